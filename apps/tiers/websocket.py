"""WebSocket authentication: the same API-key admission as REST, from headers or `?api_key=`.

Close codes are 4000 + the HTTP status of the same error (documented in the README): 4401 missing,
unknown, revoked or expired key; 4403 suspended customer, address not allowed, permission or feature
missing; 4429 rate limited; 4431 key too long; 4503 rate limiter unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import parse_qs

import orjson
from asgiref.sync import sync_to_async
from channels.middleware import BaseMiddleware

from apps.tiers.exceptions import FeatureNotInTier, MissingKeyPermission, RateLimited, TiersError
from apps.tiers.services.auth import Admission, begin_admission, finish_admission
from apps.tiers.services.connections import RENEW_S, connection_slots
from apps.tiers.services.ratelimit import limiter

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
    admission = finish_admission(
        begin_admission(
            authorization=headers.get("authorization"),
            x_api_key=headers.get("x-api-key"),
            query_key=(query.get("api_key") or [None])[0],
            remote_addr=client[0],
            forwarded_for=headers.get("x-forwarded-for"),
        )
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


class ConnectionLimitReached(RateLimited):
    code = "connection_limit"


class TierWebSocketMiddleware(BaseMiddleware):
    """The whole tier gate of a WebSocket route, so consumers only see customers who may be there.

    Refuses (accept, an `error` JSON message, then the close code) a bad key, a missing feature or read
    permission, or a customer at their tier's connection cap; holds a connection slot while the socket is
    open; and spends one request of the rate limit per client message, closing with 4429 when it runs
    out. The consumer finds the principal in `scope["hft_principal"]`.
    """

    def __init__(self, inner: Any, *, feature: str) -> None:
        super().__init__(inner)
        self.feature = feature

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        try:
            admission = await sync_to_async(admit_scope)(scope)
            principal = admission.principal
            if not principal.can_read:
                raise MissingKeyPermission("This API key may not read market data.")
            if not principal.tier.has_feature(self.feature):
                raise FeatureNotInTier(
                    f"Your tier does not include '{self.feature}'.", detail={"feature": self.feature}
                )
            connection_id = connection_slots.new_id()
            cap = principal.tier.max_ws_connections
            if not await sync_to_async(connection_slots.acquire)(principal.customer_id, cap, connection_id):
                raise ConnectionLimitReached(
                    f"Your tier allows {cap} WebSocket connection(s) at a time; close one first.",
                    detail={"max_ws_connections": cap},
                )
        except TiersError as error:
            await refuse(receive, send, error)
            return None
        renewer = asyncio.get_running_loop().create_task(self._renew(principal.customer_id, cap, connection_id))
        try:
            scope = {**scope, "hft_admission": admission, "hft_principal": principal}
            return await super().__call__(scope, self._metered(receive, send, admission), send)
        finally:
            renewer.cancel()
            await sync_to_async(connection_slots.release)(principal.customer_id, connection_id)

    @staticmethod
    async def _renew(customer_id: int, cap: int, connection_id: str) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            with contextlib.suppress(TiersError):
                await sync_to_async(connection_slots.acquire)(customer_id, cap, connection_id)

    @staticmethod
    def _metered(receive: Any, send: Any, admission: Admission) -> Any:
        principal = admission.principal

        async def metered_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] != "websocket.receive":
                return message
            try:
                result = await sync_to_async(limiter.hit)(principal.customer_id, principal.tier.limits)
                decision = result.decision
                if not decision.is_allowed:
                    raise RateLimited(
                        f"Rate limit exceeded: the '{decision.denied_by}' window is used up.",
                        detail={"window": decision.denied_by, "retry_after_ms": decision.retry_after_ms},
                    )
            except TiersError as error:
                await send_error(send, error)
                await send({"type": "websocket.close", "code": close_code(error)})
                return {"type": "websocket.disconnect", "code": close_code(error)}
            return message

        return metered_receive


async def send_error(send: Any, error: TiersError) -> None:
    body = {"type": "error", "id": None, "code": error.code, "message": str(error), "detail": error.detail}
    await send({"type": "websocket.send", "text": orjson.dumps(body).decode()})


async def refuse(receive: Any, send: Any, error: TiersError) -> None:
    """Accept only to say why (a refused handshake shows the client a bare 403), then close with the code."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send_error(send, error)
    await send({"type": "websocket.close", "code": close_code(error)})
