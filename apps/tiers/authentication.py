"""DRF authentication by API key: resolves the key, checks access, and spends the rate limit.

Admission happens here, before DRF's permission checks, so every authenticated request spends from
its customer's limits, including those then refused for a missing feature or permission.

It can be begun earlier: for a path whose view is known to authenticate this way (learnt from the
requests that did), `begin_early` checks the key and sends the rate-limit call as the request enters
the middleware chain, so the Redis round trip runs while Django routes the request and DRF sets up the
view; `authenticate` then reads the answer. Anything that stops it early (a missing or bad key, a
suspended customer, an address off the allow-list) leaves the whole admission to `authenticate`, which
reports it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.tiers.domain.headers import rate_headers
from apps.tiers.exceptions import RateLimited
from apps.tiers.services.auth import BegunAdmission, Principal, begin_admission, finish_admission

ADMISSION_ATTR = "hft_admission"
BEGUN_ATTR = "hft_begun_admission"
# Paths learnt to authenticate by API key, forgotten all together past this many (paths carry symbols and ids).
MAX_KNOWN_PATHS = 10_000
_admitting_paths: set[str] = set()


def _begin(request: HttpRequest) -> BegunAdmission:
    meta = request.META
    return begin_admission(
        authorization=meta.get("HTTP_AUTHORIZATION"),
        x_api_key=meta.get("HTTP_X_API_KEY"),
        query_key=None,
        remote_addr=meta.get("REMOTE_ADDR"),
        forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"),
    )


def begin_early(request: HttpRequest) -> BegunAdmission | None:
    """Begin the admission of a request to a path known to authenticate by API key; None otherwise."""
    if request.path_info not in _admitting_paths:
        return None
    try:
        begun = _begin(request)
    except Exception:  # noqa: BLE001 - only an early start: the view's authentication redoes it and reports why
        return None
    setattr(request, BEGUN_ATTR, begun)
    return begun


def _remember_path(path: str) -> None:
    if len(_admitting_paths) >= MAX_KNOWN_PATHS:
        _admitting_paths.clear()
    _admitting_paths.add(path)


class APIKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, Any]:
        django_request = request._request
        begun: BegunAdmission | None = getattr(django_request, BEGUN_ATTR, None)
        if begun is None:
            begun = _begin(django_request)
            _remember_path(django_request.path_info)  # this path's view authenticates: begin early next time
        admission = finish_admission(begun)
        # On the Django request, so the middleware can add headers and meter usage after rendering.
        setattr(django_request, ADMISSION_ATTR, admission)
        decision = admission.limit.decision
        if not decision.is_allowed:
            raise RateLimited(
                f"Rate limit exceeded: the '{decision.denied_by}' window is used up.",
                detail={"window": decision.denied_by, "retry_after_ms": decision.retry_after_ms},
                headers=rate_headers(admission.principal.tier.limits, decision),
            )
        return admission.principal, admission

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="hftplatform"'
