"""DRF authentication by API key: resolves the key, checks access, and spends the rate limit.

Admission happens here, before DRF's permission checks, so every authenticated request spends from
its customer's limits, including those then refused for a missing feature or permission.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.tiers.domain.headers import rate_headers
from apps.tiers.exceptions import RateLimited
from apps.tiers.services.auth import Principal, admit_request

ADMISSION_ATTR = "hft_admission"


class APIKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, Any]:
        meta = request.META
        admission = admit_request(
            authorization=meta.get("HTTP_AUTHORIZATION"),
            x_api_key=meta.get("HTTP_X_API_KEY"),
            query_key=None,
            remote_addr=meta.get("REMOTE_ADDR"),
            forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"),
        )
        # On the Django request, so the middleware can add headers and meter usage after rendering.
        setattr(request._request, ADMISSION_ATTR, admission)
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
