"""WebSocket authentication: the same API-key admission as REST, from headers or `?api_key=`.

Close codes are 4000 + the HTTP status of the same error (documented in the README): 4401 missing,
unknown, revoked or expired key; 4403 suspended customer, address not allowed, permission or feature
missing; 4429 rate limited; 4431 key too long; 4503 rate limiter unavailable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.middleware import BaseMiddleware

from apps.tiers.exceptions import RateLimited, TiersError
from apps.tiers.services.auth import Admission, admit_request

HTTP_BY_KIND = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "throttled": 429,
    "header_too_large": 431,
    "unavailable": 503,
}


def close_code(error: TiersError) -> int:
    return 4000 + HTTP_BY_KIND.get(error.kind, 400)


def admit_scope(scope: dict[str, Any]) -> Admission:
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    client = scope.get("client") or (None, None)
    admission = admit_request(
        authorization=headers.get("authorization"),
        x_api_key=headers.get("x-api-key"),
        query_key=(query.get("api_key") or [None])[0],
        remote_addr=client[0],
        forwarded_for=headers.get("x-forwarded-for"),
    )
    decision = admission.limit.decision
    if not decision.is_allowed:
        raise RateLimited(
            f"Rate limit exceeded: the '{decision.denied_by}' window is used up.",
            detail={"window": decision.denied_by, "retry_after_ms": decision.retry_after_ms},
        )
    return admission


class APIKeyWebSocketMiddleware(BaseMiddleware):
    """Puts `hft_admission` (or `hft_auth_error`) in the scope; consumers close with `close_code`."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        try:
            scope["hft_admission"] = await sync_to_async(admit_scope)(scope)
        except TiersError as error:
            scope["hft_auth_error"] = error
        return await super().__call__(scope, receive, send)
