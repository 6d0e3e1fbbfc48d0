"""Metrics WebSocket: `/api/hft/ws/microstructure/{pair}?window=&venue=`, every metric once a second.

The tier gate (key, feature `microstructure`, connection cap, message rate) runs before this consumer, in
the platform's routing. Messages (JSON): `subscribed` once, then `metrics` every HFT_MICRO_WS_INTERVAL_S
(the REST body of `GET /api/hft/microstructure/{pair}`), `unavailable` while this process has no data for
the book, `pong` for `{"op": "ping", "id": ...}`, and `error` for a bad client message (or, once per
outage, code `internal_error` when the metrics cannot be computed; the stream retries each period). A bad
pair, venue or window is an `error` followed by close code 4400; a missing principal 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.microstructure.exceptions import MicrostructureError
from apps.microstructure.services.live import get_microstructure
from apps.microstructure.services.reads import MetricsTarget, live_metrics, resolve_target, window_name
from apps.orderbook.exceptions import BookNotAvailable, OrderbookError

logger = logging.getLogger(__name__)
BAD_REQUEST_CLOSE = 4400
NO_KEY_CLOSE = 4401


class MicrostructureConsumer(AsyncWebsocketConsumer):
    # No channel layer: each connection reads the process's live windows itself (see OrderBookConsumer).
    channel_layer_alias = "microstructure-uses-no-channel-layer"
    pusher: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.accept()
        if self.scope.get("hft_principal") is None:
            await self.refuse(NO_KEY_CLOSE, "missing_api_key", "An API key is required.")
            return
        query = {k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode("latin-1")).items()}
        pair = self.scope["url_route"]["kwargs"]["pair"]
        try:
            target = await sync_to_async(resolve_target)(pair, query.get("venue"), query.get("window"))
        except (MicrostructureError, OrderbookError) as error:
            await self.refuse(BAD_REQUEST_CLOSE, error.code, str(error))
            return
        await sync_to_async(get_microstructure, thread_sensitive=False)()  # starts sampling on first use
        await self.send_json(
            {
                "type": "subscribed",
                "pair": target.symbol,
                "venue": target.venue,
                "book": target.book,
                "windows": [window_name(w) for w in target.windows_s],
                "interval_s": settings.HFT_MICRO_WS_INTERVAL_S,
            }
        )
        self.pusher = asyncio.get_running_loop().create_task(self.push(target))

    async def push(self, target: MetricsTarget) -> None:
        """Send the metrics at a fixed period (from the loop's clock, so a slow computation does not drift it)."""
        loop = asyncio.get_running_loop()
        interval = settings.HFT_MICRO_WS_INTERVAL_S
        next_at = loop.time()
        state = "ok"  # or "unavailable" / "failed": each said once per outage, not every second
        while True:
            try:
                body = await sync_to_async(live_metrics, thread_sensitive=False)(target)
                await self.send_json({"type": "metrics", **body})
                state = "ok"
            except BookNotAvailable as error:
                if state != "unavailable":
                    await self.send_json({"type": "unavailable", "code": error.code, "message": str(error)})
                state = "unavailable"
            except Exception:  # a bug must not end the stream silently, the socket open and mute: say it, retry
                logger.exception("microstructure: metrics of %s failed", target.book)
                if state != "failed":
                    await self.send_error(None, "internal_error", "The metrics could not be computed; retrying.")
                state = "failed"
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = orjson.loads(text_data or b"")
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            await self.send_error(None, "invalid_message", "Client messages are JSON objects.")
        elif message.get("op") == "ping":
            await self.send_json({"type": "pong", "id": message.get("id")})
        else:
            await self.send_error(message.get("id"), "unknown_op", "Supported ops: ping.")

    async def send_json(self, body: dict[str, Any]) -> None:
        await self.send(text_data=orjson.dumps(body, default=str).decode())

    async def send_error(self, request_id: Any, code: str, message: str) -> None:
        await self.send_json({"type": "error", "id": request_id, "code": code, "message": message})

    async def refuse(self, close_code: int, code: str, message: str) -> None:
        await self.send_error(None, code, message)
        await self.close(code=close_code)

    async def disconnect(self, code: int) -> None:
        if self.pusher is not None:
            self.pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pusher
            self.pusher = None
