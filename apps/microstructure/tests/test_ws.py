"""WS /api/hft/ws/microstructure/{pair}: the platform's whole stack (tier gate + consumer), in process."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync
from channels.routing import get_default_application
from channels.testing import WebsocketCommunicator

from apps.microstructure import consumers
from apps.microstructure.services.live import get_microstructure
from apps.microstructure.tests.conftest import Feed
from conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def in_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body on an event loop (the project has no async pytest plugin)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async_to_sync(test)(*args, **kwargs)

    return wrapper


@pytest.fixture
def market(feed: Feed) -> Feed:
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    live = get_microstructure()
    now = time.time_ns()
    feed.trade(650_010, 50_000_000, "buy", now)
    live.tick(now + 1)
    return feed


async def connect(persona: Persona, query: str = "", pair: str = "BTC-USDT") -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {persona.secret}".encode())]
    path = f"/api/hft/ws/microstructure/{pair}?{query}"
    communicator = WebsocketCommunicator(get_default_application(), path, headers=headers)
    communicator.scope["client"] = ("127.0.0.1", 50000)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(ws: WebsocketCommunicator, timeout: float = 3.0) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await ws.receive_from(timeout))
    return message


async def closed_with(ws: WebsocketCommunicator) -> tuple[dict[str, Any], int]:
    error = await receive(ws)
    close = await ws.receive_output()
    assert close["type"] == "websocket.close"
    return error, close["code"]


@in_loop
async def test_metrics_arrive_once_a_second(market: Feed, alice: Persona) -> None:
    ws = await connect(alice, "venue=okx&window=10s")
    subscribed = await receive(ws)
    assert subscribed == {
        "type": "subscribed",
        "pair": "BTC-USDT",
        "venue": "okx",
        "book": "okx:BTC-USDT",
        "windows": ["10s"],
        "interval_s": 1.0,
    }
    arrivals, updates = [], []
    for _ in range(3):
        updates.append(await receive(ws))
        arrivals.append(time.monotonic())
    assert {u["type"] for u in updates} == {"metrics"}
    assert all(list(u["windows"]) == ["10s"] for u in updates)
    assert Decimal(updates[-1]["windows"]["10s"]["metrics"]["volume_base"]["value"]) == Decimal("0.5")
    assert updates[0]["ts_ns"] < updates[1]["ts_ns"] < updates[2]["ts_ns"]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.8 < gap < 1.3 for gap in gaps), gaps
    await ws.disconnect()


@in_loop
async def test_ping_is_answered_and_an_unknown_op_is_an_error_that_keeps_the_stream(
    market: Feed, alice: Persona
) -> None:
    ws = await connect(alice)
    assert (await receive(ws))["type"] == "subscribed"
    await ws.send_to(text_data='{"op": "ping", "id": 7}')
    await ws.send_to(text_data='{"op": "dance", "id": 8}')
    await ws.send_to(text_data="not json")
    seen = [await receive(ws) for _ in range(4)]
    by_type = {(m["type"], m.get("id")): m for m in seen}
    assert ("pong", 7) in by_type
    assert by_type[("error", 8)]["code"] == "unknown_op"
    assert by_type[("error", None)]["code"] == "invalid_message"
    assert ("metrics", None) in by_type
    await ws.disconnect()


@in_loop
async def test_the_free_tier_is_refused_with_4403(market: Feed, bob: Persona) -> None:
    ws = await connect(bob)
    error, code = await closed_with(ws)
    assert (error["code"], code) == ("feature_not_in_tier", 4403)


@pytest.mark.parametrize(
    ("query", "pair", "error_code"),
    [
        ("window=7s", "BTC-USDT", "unknown_window"),
        ("", "NOPE-USD", "unknown_pair"),
        ("venue=x", "BTC-USDT", "unknown_venue"),
    ],
)
@in_loop
async def test_a_bad_request_is_an_error_then_4400(
    market: Feed, alice: Persona, query: str, pair: str, error_code: str
) -> None:
    ws = await connect(alice, query, pair)
    error, code = await closed_with(ws)
    assert (error["type"], error["code"], code) == ("error", error_code, 4400)


@in_loop
async def test_a_book_without_data_is_reported_unavailable_once(market: Feed, alice: Persona) -> None:
    ws = await connect(alice, pair="ETH-USDT")
    assert (await receive(ws))["type"] == "subscribed"
    unavailable = await receive(ws)
    assert (unavailable["type"], unavailable["code"]) == ("unavailable", "book_not_available")
    assert await ws.receive_nothing(timeout=1.5)
    await ws.disconnect()


@in_loop
async def test_a_failing_computation_is_reported_once_and_the_stream_goes_on(
    market: Feed, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [0]
    real = consumers.live_metrics

    def fails_twice(target: Any) -> dict[str, Any]:
        calls[0] += 1
        if calls[0] <= 2:
            raise RuntimeError("a bug in a formula")
        return real(target)

    monkeypatch.setattr(consumers, "live_metrics", fails_twice)
    ws = await connect(alice, "window=10s")
    assert (await receive(ws))["type"] == "subscribed"
    error = await receive(ws)
    assert (error["type"], error["code"]) == ("error", "internal_error")
    assert (await receive(ws))["type"] == "metrics"  # the second failure was not repeated; then it recovered
    await ws.disconnect()
