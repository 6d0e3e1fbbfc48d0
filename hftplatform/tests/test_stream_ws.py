"""The book WebSocket through the platform's full stack (tier gate + consumer + stream hub), in process.

Events are published into the embedded bus exactly as a feed runner would; the client side applies
what it receives to a local book and compares it with the server's replica.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, BookEvent, Trade
from apps.orderbook.domain.fixedpoint import to_units
from apps.orderbook.services.bus import unpublished
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.services.reads import catalogue
from apps.tiers.models import Tier
from apps.tiers.tests.conftest import Persona, make_persona
from hftplatform.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BOOK = "consolidated:BTC-USDT"
EXP = 8  # BTC-USDT's decimals (seeded)
application = URLRouter(websocket_urlpatterns)


def units(text: str) -> int:
    return to_units(text, EXP)


def publish(kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]], book: str = BOOK) -> int:
    now = time.time_ns()
    [event] = get_bus().publish([unpublished(book, kind, tuple(bids), tuple(asks), EXP, EXP, now, now)], now)
    return event.seq


def seed_book(levels: int = 10) -> int:
    bids = [(100_000 - i, 1 + i) for i in range(levels)]
    asks = [(100_001 + i, 1 + i) for i in range(levels)]
    return publish(SNAPSHOT, bids, asks)


def random_delta(rng: random.Random) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    bids = [(rng.randint(99_980, 100_000), rng.choice([0, 0, rng.randint(1, 50)])) for _ in range(rng.randint(0, 3))]
    asks = [(rng.randint(100_001, 100_021), rng.choice([0, 0, rng.randint(1, 50)])) for _ in range(rng.randint(0, 3))]
    return list(dict(bids).items()), list(dict(asks).items())


class Client:
    """A test client keeping the local book the way docs/streaming.md tells customers to."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.seq = 0
        self.messages: list[dict[str, Any]] = []

    async def next(self, timeout: float = 2.0) -> dict[str, Any]:
        message: dict[str, Any] = orjson.loads(await self.ws.receive_from(timeout))
        self.messages.append(message)
        if message["type"] == SNAPSHOT:
            self.bids = {units(p): units(q) for p, q in message["bids"]}
            self.asks = {units(p): units(q) for p, q in message["asks"]}
            self.seq = message["sequence"]
        elif message["type"] == DELTA:
            assert message["sequence"] == self.seq + 1, f"gap: {self.seq} then {message['sequence']}"
            self.seq = message["sequence"]
            for side, levels in ((self.bids, message["bids"]), (self.asks, message["asks"])):
                for p, q in levels:
                    if units(q):
                        side[units(p)] = units(q)
                    else:
                        side.pop(units(p), None)
        return message

    async def next_of(self, kind: str, timeout: float = 2.0) -> dict[str, Any]:
        while True:
            message = await self.next(timeout)
            if message["type"] == kind:
                return message

    async def send(self, message: Any) -> None:
        await self.ws.send_to(text_data=message if isinstance(message, str) else orjson.dumps(message).decode())

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(self.bids.items(), reverse=True)[:depth], sorted(self.asks.items())[:depth]


async def connect(persona: Persona, query: str = "", pair: str = "BTC-USDT") -> Client:
    headers = [(b"authorization", f"Bearer {persona.secret}".encode())]
    communicator = WebsocketCommunicator(application, f"/api/hft/ws/orderbook/{pair}?{query}", headers=headers)
    communicator.scope["client"] = ("127.0.0.1", 50000)
    connected, _ = await communicator.connect()
    assert connected
    return Client(communicator)


async def closed_with(client: Client) -> tuple[dict[str, Any], int]:
    error = orjson.loads(await client.ws.receive_from())
    close = await client.ws.receive_output()
    assert close["type"] == "websocket.close"
    return error, close["code"]


def server_top(depth: int | None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    view = get_hub().view(BOOK, depth)
    assert view is not None
    return view.bids, view.asks


def run(test: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(test)()


def test_snapshot_then_gap_free_deltas_keep_a_depth_limited_book_exact(alice: Persona) -> None:
    async def scenario() -> None:
        start = seed_book(levels=10)
        client = await connect(alice, "depth=5")
        subscribed = await client.next()
        assert subscribed["type"] == "subscribed"
        assert subscribed["depth"] == 5
        assert subscribed["instrument_id"] > 0
        assert subscribed["venue_id"] == 0
        snapshot = await client.next()
        assert snapshot["type"] == SNAPSHOT
        assert snapshot["reason"] == "subscribe"
        assert snapshot["sequence"] == start
        assert client.top(5) == server_top(5)
        rng = random.Random(7)
        for _ in range(200):
            publish(DELTA, *random_delta(rng))
            message = await client.next_of(DELTA)
            assert message["timestamp"] >= message["receive_timestamp"]
            assert client.top(5) == server_top(5)
            assert len(client.bids) <= 5
            assert len(client.asks) <= 5
        assert client.seq == start + 200
        await client.ws.disconnect()

    run(scenario)


def test_full_depth_stream_forwards_every_event_as_published(alice: Persona, settings: Any) -> None:
    alice.customer.tier.max_book_depth = None
    alice.customer.tier.save()
    rng = random.Random(3)

    async def scenario() -> None:
        seed_book(levels=30)
        client = await connect(alice, "depth=full")
        assert (await client.next())["depth"] == "full"
        await client.next_of(SNAPSHOT)
        for _ in range(50):
            bids, asks = random_delta(rng)
            publish(DELTA, bids, asks)
            message = await client.next_of(DELTA)
            assert [[units(p), units(q)] for p, q in message["bids"]] == [list(level) for level in bids]
        assert client.top(1000) == server_top(None)
        await client.ws.disconnect()

    run(scenario)


def test_connector_reset_reaches_clients_as_a_snapshot_with_its_sequence(alice: Persona) -> None:
    async def scenario() -> None:
        seed_book()
        client = await connect(alice, "depth=3")
        await client.next_of(SNAPSHOT)
        publish(STALE, [], [])
        stale = await client.next_of(STALE)
        assert stale["sequence"] == client.seq + 1 or stale["sequence"] > 0
        seq = publish(SNAPSHOT, [(90_000, 5)], [(90_010, 6)])
        reset = await client.next_of(SNAPSHOT)
        assert reset["reason"] == "reset"
        assert reset["sequence"] == seq
        assert client.top(3) == ([(90_000, 5)], [(90_010, 6)])
        await client.ws.disconnect()

    run(scenario)


def test_resume_at_a_depth_replays_the_missed_deltas_without_a_snapshot(alice: Persona) -> None:
    rng = random.Random(11)

    async def scenario() -> None:
        seed_book()
        first = await connect(alice, "depth=4")
        await first.next_of(SNAPSHOT)
        for _ in range(5):
            publish(DELTA, *random_delta(rng))
            await first.next_of(DELTA)
        await first.ws.disconnect()
        for _ in range(30):
            publish(DELTA, *random_delta(rng))
        resumed = await connect(alice, f"depth=4&since_sequence={first.seq}")
        resumed.seq, resumed.bids, resumed.asks = first.seq, first.bids, first.asks
        assert (await resumed.next())["type"] == "subscribed"
        for _ in range(30):
            assert (await resumed.next())["type"] == DELTA
        assert resumed.top(4) == server_top(4)
        await resumed.ws.disconnect()

    run(scenario)


def test_full_depth_resume_reads_the_bus_history_when_this_process_has_no_frames(alice: Persona) -> None:
    alice.customer.tier.max_book_depth = None
    alice.customer.tier.save()
    rng = random.Random(5)

    async def scenario() -> None:
        start = seed_book()
        for _ in range(40):
            publish(DELTA, *random_delta(rng))
        client = await connect(alice, f"depth=full&since_sequence={start}")
        client.seq = start
        client.bids = {100_000 - i: 1 + i for i in range(10)}
        client.asks = {100_001 + i: 1 + i for i in range(10)}
        assert (await client.next())["type"] == "subscribed"
        for _ in range(40):
            assert (await client.next())["type"] == DELTA
        publish(DELTA, *random_delta(rng))
        await client.next_of(DELTA)
        assert client.top(1000) == server_top(None)
        await client.ws.disconnect()

    run(scenario)


def test_resume_older_than_the_tier_history_gets_a_history_snapshot(db: None) -> None:
    carol = make_persona("Carol Markets", "basic")  # delta history 100

    async def scenario() -> None:
        start = seed_book()
        for _ in range(150):
            publish(DELTA, [(99_000, 1)], [])
        client = await connect(carol, f"since_sequence={start}")
        await client.next()
        snapshot = await client.next()
        assert snapshot["type"] == SNAPSHOT
        assert snapshot["reason"] == "history"
        assert snapshot["sequence"] == start + 150
        await client.ws.disconnect()

    run(scenario)


def test_client_ops_subscribe_unsubscribe_resync_ping_and_errors_keep_the_connection(alice: Persona) -> None:
    async def scenario() -> None:
        seed_book()
        publish(SNAPSHOT, [(200, 1)], [(201, 1)], book="consolidated:ETH-USDT")
        client = await connect(alice, "depth=2")
        await client.next_of(SNAPSHOT)
        await client.send({"op": "ping", "id": 1})
        pong = await client.next_of("pong")
        assert pong["id"] == 1
        await client.send({"op": "subscribe", "id": 2, "pair": "ETH/USDT", "depth": 1})
        subscribed = await client.next_of("subscribed")
        assert subscribed == subscribed | {"id": 2, "pair": "ETH-USDT", "depth": 1}
        eth = await client.next_of(SNAPSHOT)
        assert eth["pair"] == "ETH-USDT"
        await client.send({"op": "resync", "id": 3, "pair": "BTC-USDT"})
        resync = await client.next_of(SNAPSHOT)
        assert resync["reason"] == "resync"
        assert resync["pair"] == "BTC-USDT"
        for bad, code in [
            ({"op": "dance", "id": 4}, "unknown_op"),
            ("not json", "invalid_json"),
            ({"op": "subscribe", "id": 5, "pair": "NOPE-USD"}, "unknown_pair"),
            ({"op": "subscribe", "id": 6, "pair": "BTC-USDT"}, "already_subscribed"),
            ({"op": "subscribe", "id": 7, "pair": "BTC-USDT", "venue": "okx", "depth": -1}, "invalid_depth"),
            ({"op": "unsubscribe", "id": 8, "pair": "BTC-USDT", "venue": "okx"}, "not_subscribed"),
        ]:
            await client.send(bad)
            error = await client.next_of("error")
            assert error["code"] == code, error
        await client.ws.send_to(bytes_data=b"\x01")
        assert (await client.next_of("error"))["code"] == "invalid_message"
        await client.send({"op": "unsubscribe", "id": 9, "pair": "ETH-USDT"})
        assert (await client.next_of("unsubscribed"))["id"] == 9
        publish(DELTA, [(201, 2)], [], book="consolidated:ETH-USDT")
        publish(DELTA, [(99_999, 7)], [])
        delta = await client.next_of(DELTA)
        assert delta["pair"] == "BTC-USDT"
        await client.ws.disconnect()

    run(scenario)


def test_heartbeats_carry_the_last_sequence(alice: Persona, settings: Any) -> None:
    settings.HFT_WS_HEARTBEAT_S = 0.05

    async def scenario() -> None:
        seq = seed_book()
        client = await connect(alice)
        await client.next_of(SNAPSHOT)
        heartbeat = await client.next_of("heartbeat")
        assert heartbeat["sequence"] == seq
        assert heartbeat["pair"] == "BTC-USDT"
        await client.ws.disconnect()

    run(scenario)


def test_a_book_without_data_starts_with_its_first_snapshot(alice: Persona) -> None:
    async def scenario() -> None:
        client = await connect(alice)
        assert (await client.next())["sequence"] == 0
        publish(DELTA, [(1, 1)], [])  # before any snapshot: not for clients
        seq = publish(SNAPSHOT, [(5, 1)], [(6, 1)])
        snapshot = await client.next_of(SNAPSHOT)
        assert snapshot["sequence"] == seq
        assert [m["type"] for m in client.messages] == ["subscribed", SNAPSHOT]
        await client.ws.disconnect()

    run(scenario)


def test_binary_stream_needs_its_feature(alice: Persona) -> None:
    async def scenario() -> None:
        client = await connect(alice, "format=binary")
        error, code = await closed_with(client)
        assert (error["code"], code) == ("feature_not_in_tier", 4403)

    run(scenario)


def test_bad_connection_parameters_close_with_4400(alice: Persona) -> None:
    async def scenario() -> None:
        for query, pair, expected in [
            ("format=xml", "BTC-USDT", "invalid_format"),
            ("depth=abc", "BTC-USDT", "invalid_depth"),
            ("since_sequence=-4", "BTC-USDT", "invalid_since_sequence"),
            ("", "DOGE-EUR", "unknown_pair"),
            ("venue=nasdaq", "BTC-USDT", "unknown_venue"),
        ]:
            client = await connect(alice, query, pair)
            error, code = await closed_with(client)
            assert (error["code"], code) == (expected, 4400)

    run(scenario)


def test_tier_caps_connections_subscriptions_and_depth(db: None) -> None:
    Tier.objects.filter(slug="free").update(burst=100)  # room for the messages this test sends
    bob = make_persona("Bob Trading", "free")  # 1 connection, 5 subscriptions, depth 20

    async def scenario() -> None:
        seed_book()
        first = await connect(bob, "depth=500")
        subscribed = await first.next()
        assert (subscribed["depth"], subscribed["depth_capped"]) == (20, True)
        second = await connect(bob)
        error, code = await closed_with(second)
        assert (error["code"], code) == ("connection_limit", 4429)
        for i, pair in enumerate(["ETH-USDT", "NKN-USDT", "CRV-USDT", "COMP-USDT", "ZRX-USDT"]):
            await first.send({"op": "subscribe", "id": i, "pair": pair})
            await first.next_of("subscribed" if i < 4 else "error")
        assert first.messages[-1]["code"] == "subscription_limit"
        await first.ws.disconnect()
        third = await connect(bob)  # the slot was released
        assert (await third.next())["type"] == "subscribed"
        await third.ws.disconnect()

    run(scenario)


def test_client_messages_spend_the_rate_limit_and_close_with_4429(db: None) -> None:
    bob = make_persona("Bob Trading", "free")  # burst 5

    async def scenario() -> None:
        client = await connect(bob)  # the connection spends one
        await client.next()
        for i in range(10):
            await client.send({"op": "ping", "id": i})
            answer = orjson.loads(await client.ws.receive_from())
            if answer["type"] == "error":
                break
        assert 4 <= i < 10, "the burst of 5 (plus refill at 2/s) must run out"
        close = await client.ws.receive_output()
        assert (answer["code"], close["code"]) == ("rate_limited", 4429)

    run(scenario)


def test_missing_key_is_refused_with_4401(db: None) -> None:
    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, "/api/hft/ws/orderbook/BTC-USDT")
        communicator.scope["client"] = ("127.0.0.1", 50000)
        await communicator.connect()
        error, code = await closed_with(Client(communicator))
        assert (error["code"], code) == ("missing_api_key", 4401)

    run(scenario)


def test_many_subscribers_share_frames_and_all_keep_up(alice: Persona) -> None:
    alice.customer.tier.max_ws_connections = 50
    alice.customer.tier.save()

    async def scenario() -> None:
        seed_book()
        clients = [await connect(alice, "depth=5") for _ in range(20)]
        for client in clients:
            await client.next_of(SNAPSHOT)
        rng = random.Random(1)
        for _ in range(20):
            publish(DELTA, *random_delta(rng))
        for client in clients:
            while client.seq < get_hub().view(BOOK, 1).seq:
                await client.next()
            assert client.top(5) == server_top(5)
        await asyncio.gather(*(client.ws.disconnect() for client in clients))

    run(scenario)


def test_a_platform_reset_with_a_lower_sequence_reaches_clients_as_a_reset_snapshot(alice: Persona) -> None:
    """Redis and the feed runner both restarted: the book's sequence starts again at 1."""

    def from_the_new_runner(seq: int, kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        now = time.time_ns()
        get_hub().on_event(BookEvent(BOOK, seq, kind, tuple(bids), tuple(asks), EXP, EXP, now, now, now))

    async def scenario() -> None:
        seed_book()
        for i in range(5):
            publish(DELTA, [(99_000 + i, 1)], [])
        client = await connect(alice, "depth=3")
        await client.next_of(SNAPSHOT)
        assert client.seq == 6
        from_the_new_runner(1, SNAPSHOT, [(50, 1)], [(60, 1)])
        reset = await client.next_of(SNAPSHOT)
        assert (reset["reason"], reset["sequence"]) == ("reset", 1)
        from_the_new_runner(2, DELTA, [(51, 2)], [])
        assert (await client.next_of(DELTA))["sequence"] == 2
        assert client.top(3) == ([(51, 2), (50, 1)], [(60, 1)])
        await client.ws.disconnect()

    run(scenario)


def test_trades_reach_subscribers_that_ask_for_them_in_json_and_binary(db: None) -> None:
    from hftclient.binary import decode_binary

    erin = make_persona("Erin Quant", "enterprise")
    listed = next(v for v in catalogue().instruments["BTC-USDT"]["venues"] if v["venue"] == "binance")

    def trade(trade_id: str) -> None:
        now = time.time_ns()
        get_bus().publish_trades(
            [Trade("binance", "BTC-USDT", trade_id, 6_500_001_000_000, 25_000_000, "sell", now, now)]
        )

    async def scenario() -> None:
        seed_book()
        publish(SNAPSHOT, [(1, 1)], [(2, 1)], book="binance:BTC-USDT")
        with_trades = await connect(erin, "trades=true")
        assert (await with_trades.next())["trades"] is True
        await with_trades.next_of(SNAPSHOT)
        binary_venue = await connect(erin, "format=binary&venue=binance&trades=1")
        await binary_venue.ws.receive_from()  # subscribed (JSON text)
        await binary_venue.ws.receive_output()  # snapshot (binary)
        without = await connect(erin)
        await without.next_of(SNAPSHOT)
        trade("t-1")
        message = await with_trades.next_of("trade")
        assert message == message | {"venue": "binance", "trade_id": "t-1", "price": "65000.01", "size": "0.25"}
        assert message["aggressor"] == "sell"
        frame = (await binary_venue.ws.receive_output())["bytes"]
        decoded = decode_binary(frame)
        assert (decoded.trade_id, decoded.price, decoded.size) == ("t-1", Decimal("65000.01"), Decimal("0.25"))
        assert decoded.source.venue_id == listed["venue_id"]
        publish(DELTA, [(99_999, 3)], [])
        assert (await without.next())["type"] == DELTA  # no trade before it
        for client in (with_trades, binary_venue, without):
            await client.ws.disconnect()

    run(scenario)
