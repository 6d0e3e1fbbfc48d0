"""Fan-out baseline for Channels: a consumer per subscriber in one group, fed by channels-redis `group_send`.

Served by daphne as `bench.fanout_channels:application` with `bench.settings_fanout` (the project's channel
layer on the benchmark's Redis db). Each group message carries the delta's JSON, already encoded once by the
publisher, with its sequence and publish time; each consumer sends it on and notes when its send returned.
`GET /bench/stats` answers `[sequence, publish ns, last send ns, sends]` per delta since the last call.
"""

from __future__ import annotations

import os
import time
from typing import Any

import django
import orjson

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_fanout")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench-fanout"
MESSAGE_TYPE = "book.delta"
# sequence -> [publish ns, latest send ns, sends]; one process, one event loop, so no lock.
_sends: dict[int, list[int]] = {}


class FanoutConsumer(AsyncWebsocketConsumer):
    groups = [GROUP]  # joined in websocket_connect, before connect() accepts

    async def book_delta(self, message: dict[str, Any]) -> None:
        await self.send(text_data=message["text"])
        now = time.time_ns()
        record = _sends.get(message["seq"])
        if record is None:
            _sends[message["seq"]] = [message["ts"], now, 1]
        else:
            record[1] = max(record[1], now)
            record[2] += 1


async def stats_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Plain ASGI: the send records since the last call, then forgets them."""
    while (await receive()).get("more_body"):
        pass
    found = scope["path"] == "/bench/stats"
    body = orjson.dumps([[seq, *record] for seq, record in sorted(_sends.items())]) if found else b"not found"
    if found:
        _sends.clear()
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter(
    {"http": stats_app, "websocket": URLRouter([path("bench/ws", FanoutConsumer.as_asgi())])}
)
