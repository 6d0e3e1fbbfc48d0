"""Adds rate-limit headers to every admitted API response and meters its usage and duration (in memory, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.tiers.authentication import ADMISSION_ATTR
from apps.tiers.domain.headers import rate_headers
from apps.tiers.services.auth import Admission
from apps.tiers.services.timing import record_request
from apps.tiers.services.usage import accumulator


class RateLimitHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started_ns = time.perf_counter_ns()
        response = self.get_response(request)
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
