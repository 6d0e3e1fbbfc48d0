"""WebSocket session: proves the key, reports the tier, answers pings; every message spends the limit."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.tiers.exceptions import RateLimited, TiersError
from apps.tiers.services.auth import Admission
from apps.tiers.services.ratelimit import limiter
from apps.tiers.websocket import close_code


class SessionConsumer(AsyncJsonWebsocketConsumer):
    admission: Admission

    async def connect(self) -> None:
        await self.accept()
        error: TiersError | None = self.scope.get("hft_auth_error")
        if error is not None:
            await self.refuse(error)
            return
        self.admission = self.scope["hft_admission"]
        principal = self.admission.principal
        await self.send_json(
            {
                "type": "welcome",
                "customer": principal.customer_name,
                "tier": principal.tier.slug,
                "features": sorted(principal.tier.features),
            }
        )

    async def refuse(self, error: TiersError) -> None:
        await self.send_json({"type": "error", "code": error.code, "message": str(error), "detail": error.detail})
        await self.close(code=close_code(error))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        principal = self.admission.principal
        result = await sync_to_async(limiter.hit)(principal.customer_id, principal.tier.limits)
        if not result.decision.is_allowed:
            await self.refuse(RateLimited(f"Rate limit exceeded: '{result.decision.denied_by}' window."))
            return
        message_id = content.get("id") if isinstance(content, dict) else None
        if isinstance(content, dict) and content.get("op") == "ping":
            await self.send_json({"type": "pong", "id": message_id})
        else:
            await self.send_json(
                {"type": "error", "id": message_id, "code": "unknown_op", "message": "Supported ops: ping."}
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except ValueError:
            await self.send_json({"type": "error", "code": "invalid_json", "message": "Messages are JSON objects."})
