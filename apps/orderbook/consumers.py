"""Book WebSocket: `/api/hft/ws/orderbook/{pair}`, JSON or binary, with subscribe/unsubscribe/resync/ping.

The tier gate (key, feature, connection cap, message rate) runs before this consumer, in the platform's
routing; the principal it admitted is in `scope["hft_principal"]`, read here only for the tier's
limits. Market data never passes through the channel layer: the stream hub writes frames to this
connection's edge directly. Protocol: docs/streaming.md.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.orderbook.exceptions import OrderbookError, StreamRequestError
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.services.stream.edge import Frame, make_edge
from apps.orderbook.services.stream.fanout import Connection, StreamHub, get_stream_hub
from apps.orderbook.services.stream.frames import BINARY, FORMATS, JSON, control_frame, error_frame
from apps.orderbook.services.stream.requests import (
    SLOW_CONSUMER_CLOSE,
    SLOW_CONSUMER_CLOSE_GRACE_S,
    SubscribeRequest,
    parse_message,
    parse_subscribe,
    resolve_meta,
)

BINARY_FEATURE = "binary_stream"
OPS = "subscribe, unsubscribe, resync, ping"


class OrderBookConsumer(AsyncWebsocketConsumer):
    # Market data never touches the channel layer: an alias naming no layer makes Channels skip it, which
    # also spares every connection a Redis receive loop of its own.
    channel_layer_alias = "market-data-uses-no-channel-layer"
    conn: Connection | None = None
    streams: StreamHub

    async def connect(self) -> None:
        await self.accept()
        principal = self.scope.get("hft_principal")
        query = {k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode("latin-1")).items()}
        fmt = query.get("format", JSON)
        if principal is None:
            await self.refuse(JSON, 4401, "missing_api_key", "An API key is required.")
            return
        if fmt not in FORMATS:
            await self.refuse(JSON, 4400, "invalid_format", f"format must be one of {', '.join(FORMATS)}.")
            return
        if fmt == BINARY and BINARY_FEATURE not in principal.tier.features:
            await self.refuse(JSON, 4403, "feature_not_in_tier", "The binary stream needs a tier with 'binary_stream'.")
            return
        self.tier = principal.tier
        self.conn = Connection(make_edge(self.base_send, settings.HFT_WS_MAX_QUEUE, self.on_overflow), fmt)
        # The first connection of a process subscribes the hub to Redis and bootstraps it: not on the loop.
        hub = await sync_to_async(get_hub, thread_sensitive=False)()
        self.streams = get_stream_hub(hub, get_bus())
        query["pair"] = self.scope["url_route"]["kwargs"]["pair"]
        try:
            request = parse_subscribe(query, self.tier)
            await self.subscribe(request, None)
        except OrderbookError as error:  # StreamRequestError included
            await self.refuse(fmt, 4400, error.code, str(error))

    async def subscribe(self, request: SubscribeRequest, request_id: Any) -> None:
        assert self.conn is not None
        meta = await sync_to_async(resolve_meta)(request.pair, request.venue)
        if meta.book in self.conn.subscriptions:
            raise StreamRequestError("already_subscribed", f"Already subscribed to {meta.pair} on {meta.venue}.")
        cap = self.tier.max_subscriptions_per_connection
        if len(self.conn.subscriptions) >= cap:
            raise StreamRequestError("subscription_limit", f"Your tier allows {cap} subscription(s) per connection.")
        sub = self.streams.subscribe(self.conn, meta, request.depth, wants_trades=request.wants_trades)
        self.write(
            control_frame(
                {
                    "type": "subscribed",
                    "id": request_id,
                    "pair": meta.pair,
                    "venue": meta.venue,
                    "book": meta.book,
                    "instrument_id": meta.instrument_id,
                    "venue_id": meta.venue_id,
                    "depth": request.depth if request.depth is not None else "full",
                    "depth_capped": request.is_depth_capped,
                    "price_decimals": meta.price_decimals,
                    "size_decimals": meta.size_decimals,
                    "format": self.conn.fmt,
                    "trades": request.wants_trades,
                    "sequence": self.streams.latest(meta.book),
                }
            )
        )
        self.streams.start(sub, request.since_sequence, self.tier.delta_history_length)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conn is None:
            return
        request_id: Any = None
        try:
            if text_data is None:
                raise StreamRequestError("invalid_message", "Client messages are JSON text frames.")
            message = parse_message(text_data)
            request_id = message.get("id")
            await self.dispatch_op(message, request_id)
        except OrderbookError as error:  # StreamRequestError included
            self.write(error_frame(self.conn.fmt, request_id, error.code, str(error)))

    async def dispatch_op(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.conn is not None
        op = message.get("op")
        if op == "ping":
            self.write(control_frame({"type": "pong", "id": request_id, "timestamp": time.time_ns()}))
        elif op == "subscribe":
            await self.subscribe(parse_subscribe(message, self.tier), request_id)
        elif op in ("unsubscribe", "resync"):
            pair = message.get("pair")
            if not isinstance(pair, str):
                raise StreamRequestError("invalid_message", f"'{op}' needs a 'pair'.")
            meta = await sync_to_async(resolve_meta)(pair, message.get("venue"))
            sub = self.conn.subscriptions.get(meta.book)
            if sub is None:
                raise StreamRequestError("not_subscribed", f"Not subscribed to {meta.pair} on {meta.venue}.")
            if op == "resync":
                self.streams.resync(sub)
            else:
                self.streams.unsubscribe(self.conn, meta.book)
                body = {"type": "unsubscribed", "id": request_id, "pair": meta.pair, "venue": meta.venue}
                self.write(control_frame(body))
        else:
            raise StreamRequestError("unknown_op", f"Supported ops: {OPS}.")

    def write(self, frame: Frame) -> None:
        assert self.conn is not None
        self.conn.edge.write(frame)

    def on_overflow(self) -> None:
        """Called by the edge when this connection fell more than HFT_WS_MAX_QUEUE frames behind."""
        if self.conn is not None:
            # Called while the stream hub iterates its subscribers: leave them for after this event.
            self.streams.loop.call_soon(self.streams.drop, self.conn)
            message = f"You fell more than {settings.HFT_WS_MAX_QUEUE} messages behind; reconnect with since_sequence."
            frame = error_frame(self.conn.fmt, None, "slow_consumer", message)
            self.conn.edge.grant_close_grace(SLOW_CONSUMER_CLOSE_GRACE_S)
            self.conn = None
            self.streams.loop.create_task(self.close_with(frame, SLOW_CONSUMER_CLOSE))

    async def close_with(self, frame: Frame, code: int) -> None:
        if frame.is_binary:
            await self.send(bytes_data=frame.payload)
        else:
            await self.send(text_data=frame.payload.decode())
        await self.close(code=code)

    async def refuse(self, fmt: str, code: int, error_code: str, message: str) -> None:
        if self.conn is not None:
            self.streams.drop(self.conn)
            self.conn.edge.shut()
            self.conn = None
        await self.close_with(error_frame(fmt, None, error_code, message), code)

    async def disconnect(self, code: int) -> None:
        if self.conn is not None:
            self.streams.drop(self.conn)
            self.conn.edge.shut()
            self.conn = None
