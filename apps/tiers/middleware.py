"""Begins admission early, adds rate-limit headers to every admitted API response and meters its usage
and duration (in memory, no I/O)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.tiers.authentication import ADMISSION_ATTR, begin_early
from apps.tiers.domain.headers import rate_headers
from apps.tiers.services.auth import Admission, finish_admission
from apps.tiers.services.timing import record_request
from apps.tiers.services.usage import accumulator

logger = logging.getLogger(__name__)


class RateLimitHeadersMiddleware:
    """Sits near the top of the chain, so an early admission's round trip overlaps the rest of it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started_ns = time.perf_counter_ns()
        begun = begin_early(request)
        try:
            response = self.get_response(request)
        finally:
            if begun is not None and not begun.pending.is_answered:
                # Answered before the view authenticated (say, a 406 from content negotiation): the
                # request was spent in Redis, so it is reported and metered like any other.
                try:
                    setattr(request, ADMISSION_ATTR, finish_admission(begun))
                except Exception as exc:  # noqa: BLE001 - the response stands; only its headers are lost
                    logger.warning("rate limiter: an early admission could not be finished (%s)", exc)
        admission: Admission | None = getattr(request, ADMISSION_ATTR, None)
        if admission is None:
            return response
        record_request(admission.principal.tier.slug, time.perf_counter_ns() - started_ns)
        decision = admission.limit.decision
        for name, value in rate_headers(admission.principal.tier.limits, decision).items():
            response[name] = value
        if admission.limit.is_degraded:
            response["X-RateLimit-Degraded"] = "local"
        match = request.resolver_match
        endpoint = match.route if match is not None else request.path
        size = 0 if response.streaming else len(response.content)
        accumulator.record(
            admission.principal.key_id,
            admission.principal.customer_id,
            endpoint,
            is_refused=not decision.is_allowed,
            bytes_out=size,
            now_s=decision.now_ms // 1000,
        )
        return response
