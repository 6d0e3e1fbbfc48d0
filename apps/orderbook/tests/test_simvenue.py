"""Over real loopback, the Binance connector follows the simulated venue exactly as it follows Binance."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.events import BookChange, BookStale, InstrumentSpec, Trade
from apps.orderbook.domain.fixedpoint import to_units
from apps.orderbook.domain.protocol import Fetch, Output, Reconnect, Verified
from apps.orderbook.domain.venues.binance import BinanceProtocol
from apps.orderbook.simvenue import SimulatedVenue

SPEC = InstrumentSpec(symbol="BTC-USDT", venue_symbol="BTCUSDT", price_exp=2, size_exp=6)


class Follower:
    """Alice's connector, driven by hand: frames and REST answers in, outputs collected."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.protocol = BinanceProtocol([SPEC])
        self.outputs: list[Output] = []
        self.last_fed_u: int | None = None

    async def handle(self, outputs: list[Output]) -> None:
        for output in outputs:
            self.outputs.append(output)
            if isinstance(output, Fetch):
                async with self.session.get(self.base + output.path) as response:
                    body = await response.text()
                    await self.handle(self.protocol.on_rest(output.key, response.status, body, time.time_ns()))

    async def feed(self, text: str) -> None:
        data = orjson.loads(text).get("data", {})
        if data.get("e") == "depthUpdate":
            self.last_fed_u = data["u"]
        await self.handle(self.protocol.on_message(text, time.time_ns()))

    def of(self, kind: type) -> list[Any]:
        return [o for o in self.outputs if isinstance(o, kind)]


async def follow_for(seconds: float, *, rate_per_s: float) -> dict[str, Any]:
    venue = SimulatedVenue({"BTCUSDT": "65000.00"}, rate_per_s=rate_per_s, seed=11)
    port = await venue.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as session:
            alice = Follower(session, base)
            ws = await session.ws_connect(base + alice.protocol.ws_path())
            await alice.handle(alice.protocol.on_open(time.time_ns()))
            deadline = loop.time() + seconds
            while loop.time() < deadline:
                message = await ws.receive(timeout=5)
                await alice.feed(message.data)
            # Freeze the market: the final snapshot's id is then the last id the diff stream will reach.
            venue.pause()
            async with session.get(f"{base}/api/v3/depth?symbol=BTCUSDT&limit=1000") as response:
                final = await response.json()
            while alice.last_fed_u != final["lastUpdateId"]:
                message = await ws.receive(timeout=5)
                await alice.feed(message.data)
            await ws.close()
            market = venue.market("BTCUSDT")
            return {
                "alice": alice,
                "final": final,
                "internal": (market.levels(BID), market.levels(ASK)),
                "counters": venue.counters,
            }
    finally:
        await venue.stop()


def levels_of(pairs: list[list[str]]) -> list[tuple[int, int]]:
    return [(to_units(p, SPEC.price_exp), to_units(q, SPEC.size_exp)) for p, q in pairs]


def test_binance_connector_syncs_verifies_and_ends_with_the_venues_exact_book():
    run = asyncio.run(follow_for(2.0, rate_per_s=2000))
    alice: Follower = run["alice"]

    assert alice.of(Reconnect) == []
    assert alice.of(BookStale) == []
    resets = [c for c in alice.of(BookChange) if c.is_reset]
    assert len(resets) == 1
    assert len(alice.of(BookChange)) > 5  # live deltas after the reset

    checks = [v for v in alice.of(Verified) if v.check == "book_ticker"]
    assert len(checks) >= 3
    assert all(v.is_ok for v in checks), [v.detail for v in checks if not v.is_ok]

    trades = alice.of(Trade)
    assert trades
    assert {t.aggressor for t in trades} == {"buy", "sell"}
    assert all(t.price > 0 and t.qty > 0 for t in trades)

    book = alice.protocol.book("BTCUSDT")
    final = run["final"]
    assert book.top(BID) == levels_of(final["bids"])
    assert book.top(ASK) == levels_of(final["asks"])
    assert (book.top(BID), book.top(ASK)) == run["internal"]

    counters = run["counters"]
    assert counters.actions >= 1000  # ~4000 at the nominal rate; slack for a loaded machine
    assert counters.updates >= counters.actions // 2
    assert counters.frames_sent >= len(alice.of(Trade))


async def rest(base: str, path: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.get(base + path) as response:
        return response.status, await response.json()


async def with_venue(scenario, **kwargs):
    venue = SimulatedVenue({"BTCUSDT": "65000.00", "ETHUSDT": "3500.0"}, seed=3, **kwargs)
    port = await venue.start("127.0.0.1", 0)
    try:
        return await scenario(venue, f"http://127.0.0.1:{port}")
    finally:
        await venue.stop()


def test_rest_answers_like_binance():
    async def scenario(venue, base):
        return {
            "depth": await rest(base, "/api/v3/depth?symbol=BTCUSDT&limit=5"),
            "default": await rest(base, "/api/v3/depth?symbol=ETHUSDT"),
            "unknown": await rest(base, "/api/v3/depth?symbol=NOPEUSDT"),
            "no_symbol": await rest(base, "/api/v3/depth"),
            "bad_limit": await rest(base, "/api/v3/depth?symbol=BTCUSDT&limit=x"),
            "ping": await rest(base, "/api/v3/ping"),
            "info": await rest(base, "/api/v3/exchangeInfo"),
        }

    answers = asyncio.run(with_venue(scenario, rate_per_s=100))
    status, depth = answers["depth"]
    assert status == 200
    assert len(depth["bids"]) == 5
    assert len(depth["asks"]) == 5
    assert isinstance(depth["lastUpdateId"], int)
    assert len(answers["default"][1]["bids"]) == 100
    assert answers["unknown"] == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert answers["no_symbol"][0] == 400
    assert answers["no_symbol"][1]["code"] == -1102
    assert answers["bad_limit"][0] == 400
    assert answers["bad_limit"][1]["code"] == -1100
    assert answers["ping"] == (200, {})
    status, info = answers["info"]
    by_symbol = {s["symbol"]: s for s in info["symbols"]}
    eth = by_symbol["ETHUSDT"]
    assert (eth["baseAsset"], eth["quoteAsset"]) == ("ETH", "USDT")
    filters = {f["filterType"]: f for f in eth["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00000100"
    assert by_symbol["BTCUSDT"]["filters"][0]["tickSize"] == "0.01000000"


def test_raw_stream_sends_unwrapped_events_and_live_subscribe_works():
    async def scenario(venue, base):
        async with aiohttp.ClientSession() as session:
            raw = await session.ws_connect(base + "/ws/btcusdt@depth")
            first = orjson.loads((await raw.receive(timeout=5)).data)
            await raw.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 4}).decode())
            await raw.send_str(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}).decode())
            replies, trade = [], None
            while trade is None or len(replies) < 2:
                event = orjson.loads((await raw.receive(timeout=5)).data)
                if "id" in event:
                    replies.append(event)
                elif event.get("e") == "aggTrade" and event["s"] == "ETHUSDT":
                    trade = event
            await raw.close()
            bad = await session.get(base + "/stream?streams=nopeusdt@depth")
            return first, replies, trade, bad.status

    first, replies, trade, bad_status = asyncio.run(with_venue(scenario, rate_per_s=1000))
    assert first["e"] == "depthUpdate"
    assert first["s"] == "BTCUSDT"
    assert "stream" not in first
    assert replies == [{"result": None, "id": 4}, {"result": ["btcusdt@depth", "ethusdt@aggTrade"], "id": 5}]
    assert trade["p"].endswith("0000000")  # ETHUSDT at one price decimal, written with eight
    assert bad_status == 400


def test_stopping_the_venue_announces_server_shutdown():
    async def scenario():
        venue = SimulatedVenue({"BTCUSDT": "65000.00"}, rate_per_s=200, seed=5)
        port = await venue.start("127.0.0.1", 0)
        protocol = BinanceProtocol([SPEC])
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://127.0.0.1:{port}{protocol.ws_path()}")
            await ws.receive(timeout=5)
            await venue.stop()
            outputs = []
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    outputs += protocol.on_message(message.data, time.time_ns())
            return outputs, ws.close_code

    outputs, close_code = asyncio.run(scenario())
    assert Reconnect("server shutdown announced") in outputs
    assert close_code == 1001
