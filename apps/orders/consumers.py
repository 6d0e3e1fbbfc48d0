"""WebSocket of a customer's order updates: every change of their orders, with the fills it added.

The tier gate (`TierWebSocketMiddleware`) has admitted the key; orders also need its `trade` permission
(else an `error` and close 4403). Each update is one message `{"type": "order", "seq", "order", "fills"}`
where `seq` counts 1, 2, 3... on this connection, so a client that sees a gap knows it missed one (and
reads the orders over REST). Ops: `ping`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.orders.services.updates import group_name, register_consumer_loop
from apps.tiers.exceptions import MissingKeyPermission, TiersError
from apps.tiers.services.auth import Principal
from apps.tiers.websocket import close_code


class OrderUpdatesConsumer(AsyncJsonWebsocketConsumer):
    principal: Principal
    group: str | None = None
    seq = 0

    async def connect(self) -> None:
        await self.accept()
        self.principal = self.scope["hft_principal"]
        if not self.principal.can_trade:
            await self.refuse(MissingKeyPermission("Order updates need an API key with the trade permission."))
            return
        register_consumer_loop(asyncio.get_running_loop())
        self.group = group_name(self.principal.customer_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json({"type": "subscribed", "channel": "orders"})

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def refuse(self, error: TiersError) -> None:
        await self.send_json({"type": "error", "code": error.code, "message": str(error), "detail": error.detail})
        await self.close(code=close_code(error))

    async def order_updates(self, message: dict[str, Any]) -> None:
        """A channel-layer message: one customer's updates from one change, in order."""
        for update in message["updates"]:
            self.seq += 1
            await self.send_json({"type": "order", "seq": self.seq, "order": update["order"], "fills": update["fills"]})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        message_id = content.get("id") if isinstance(content, dict) else None
        if isinstance(content, dict) and content.get("op") == "ping":
            await self.send_json({"type": "pong", "id": message_id, "seq": self.seq})
        else:
            await self.send_json(
                {"type": "error", "id": message_id, "code": "unknown_op", "message": "Supported ops: ping."}
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)
        except ValueError:
            await self.send_json({"type": "error", "code": "invalid_json", "message": "Messages are JSON objects."})
