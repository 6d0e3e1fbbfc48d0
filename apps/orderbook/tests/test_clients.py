"""The stream clients: server encoder → JavaScript decoder (in Node), both local books, the asyncio client."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.conf import settings
from websockets.asyncio.server import ServerConnection, serve

from apps.orderbook.domain import binary
from apps.orderbook.domain.events import DELTA, SNAPSHOT
from apps.orderbook.domain.fixedpoint import from_units
from conftest import Persona
from hftclient import (
    BookMessage,
    BookStream,
    Heartbeat,
    LocalBook,
    Stale,
    StreamClosed,
    Subscription,
    Trade,
    Update,
    decode_binary,
    parse_json,
)

HARNESS = Path(__file__).resolve().parent / "hftclient_harness.mjs"
JS_CLIENT = Path(settings.BASE_DIR) / "clients" / "js" / "hftclient.js"
TS = 1732400000224100000
BTC, ETH = 1, 2  # instrument ids
BINANCE = 3  # a venue id


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node not installed (CI has it): the JavaScript client is tested in Node 20")
    return path


def run_js(node: str, cases: list[dict[str, Any]]) -> list[list[Any]]:
    """Each case's results from hftclient.js in Node: one process for all, BigInts as strings."""
    request = json.dumps({"module": str(JS_CLIENT), "cases": cases})
    done = subprocess.run([node, str(HARNESS)], input=request, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def hexed(frame: bytes) -> dict[str, str]:
    return {"hex": frame.hex()}


def book(kind: str, seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]], reason: str = "") -> bytes:
    """A consolidated BTC-USDT book frame at 2 and 8 decimals."""
    return binary.encode_book(kind, BTC, 0, seq, 2, 8, TS - 2000, TS - 1000, TS, bids, asks, reason=reason)


def json_book(kind: str, seq: int, bids: list[list[str]], asks: list[list[str]], **extra: Any) -> str:
    body = {"type": kind, "pair": "BTC-USDT", "venue": "consolidated", "sequence": seq, "bids": bids, "asks": asks}
    return orjson.dumps({**body, "exchange_timestamp": None, "timestamp": TS, **extra}).decode()


# ---- JavaScript decoder ----------------------------------------------------------------------------


def test_js_decoder_reads_every_binary_message_type_exactly(node: str) -> None:
    frames = [
        book(SNAPSHOT, 2**64 - 1, [(6732112, 50000000)], [(6732113, 2**63 - 1)], reason="history"),
        binary.encode_book(DELTA, BTC, 0, 1235, 2, 8, None, 1, 2, [(6732112, 0), (6732050, 25000000)], [(1, 1)]),
        binary.encode_heartbeat(2**32 - 1, 2**16 - 1, 1236, -5),
        binary.encode_stale(BTC, BINANCE, 1237, TS, "checksum mismatch ✗"),
        binary.encode_trade(BTC, BINANCE, "T-42", 6732112, 1500000, "buy", TS - 1, TS, 2, 8),
        binary.encode_error(None, "slow_consumer", "Connection fell behind."),
    ]
    snapshot, delta, heartbeat, stale, trade, error = run_js(
        node, [{"op": "decode", "frames": list(map(hexed, frames))}]
    )[0]
    assert snapshot == {
        "type": "snapshot",
        "pair": None,
        "venue": None,
        "instrumentId": BTC,
        "venueId": 0,
        "sequence": str(2**64 - 1),
        "reason": "history",
        "priceDecimals": 2,
        "sizeDecimals": 8,
        "exchangeTimestamp": str(TS - 2000),
        "receiveTimestamp": str(TS - 1000),
        "timestamp": str(TS),
        "bids": [["67321.12", "0.5"]],
        "asks": [["67321.13", "92233720368.54775807"]],
    }
    assert (delta["type"], delta["sequence"], delta["exchangeTimestamp"], delta["reason"]) == (
        "delta",
        "1235",
        None,
        "",
    )
    assert delta["bids"] == [["67321.12", "0"], ["67320.5", "0.25"]]
    assert delta["asks"] == [["0.01", "0.00000001"]]
    assert heartbeat == {
        "type": "heartbeat",
        "pair": None,
        "venue": None,
        "instrumentId": 2**32 - 1,
        "venueId": 2**16 - 1,
        "sequence": "1236",
        "timestamp": "-5",
    }
    assert (stale["type"], stale["sequence"], stale["reason"], stale["venueId"]) == (
        "stale",
        "1237",
        "checksum mismatch ✗",
        3,
    )
    assert {
        k: trade[k] for k in ("tradeId", "price", "size", "aggressor", "exchangeTimestamp", "receiveTimestamp")
    } == {
        "tradeId": "T-42",
        "price": "67321.12",
        "size": "0.015",
        "aggressor": "buy",
        "exchangeTimestamp": str(TS - 1),
        "receiveTimestamp": str(TS),
    }
    assert error == {"type": "error", "id": None, "code": "slow_consumer", "message": "Connection fell behind."}


def test_js_decoder_turns_any_i64_levels_into_the_servers_decimal_strings(node: str) -> None:
    rng = random.Random(4)
    frames, expected = [], []
    for _ in range(300):
        price_exp, size_exp = rng.randint(0, 18), rng.randint(0, 18)
        bids = [
            (rng.choice([rng.getrandbits(63), rng.getrandbits(20)]), rng.getrandbits(rng.randint(0, 63)))
            for _ in range(rng.randint(0, 12))
        ]
        asks = [(rng.getrandbits(rng.randint(1, 63)), rng.getrandbits(63)) for _ in range(rng.randint(0, 12))]
        frames.append(hexed(binary.encode_book(DELTA, BTC, 0, 1, price_exp, size_exp, None, 0, 0, bids, asks)))
        expected.append(
            [[[from_units(p, price_exp), from_units(q, size_exp)] for p, q in side] for side in (bids, asks)]
        )
    decoded = run_js(node, [{"op": "decode", "frames": frames}])[0]
    assert [[message["bids"], message["asks"]] for message in decoded] == expected


def test_js_decoder_handles_negative_decimals_and_canonicalises_json_decimals(node: str) -> None:
    frames = [
        hexed(binary.encode_book(DELTA, BTC, 0, 1, -2, -1, None, 0, 0, [(5, 0), (123, 7)], [])),
        {"text": json_book(DELTA, 2**60, [["67321.10", "0.50000000"], ["00.5", "000"]], [], receive_timestamp=TS - 1)},
        {"text": '{"type": "pong", "id": 3, "timestamp": 1732400001000000001}'},
        {
            "text": '{"type":"subscribed","id":1,"pair":"BTC-USDT","venue":"binance","book":"binance:BTC-USDT",'
            '"instrument_id":1,"venue_id":3,"depth":20,"depth_capped":true,"price_decimals":2,"size_decimals":8,"format":"binary"}'
        },
        {"text": '{"type": "news", "headline": "unknown types pass"}'},
    ]
    negative, from_json, pong, subscribed, unknown = run_js(node, [{"op": "decode", "frames": frames}])[0]
    assert negative["bids"] == [["500", "0"], ["12300", "70"]]
    assert from_json["bids"] == [["67321.1", "0.5"], ["0.5", "0"]]
    assert (from_json["sequence"], from_json["receiveTimestamp"], from_json["exchangeTimestamp"]) == (
        str(2**60),
        str(TS - 1),
        None,
    )
    assert pong == {"type": "pong", "id": 3, "timestamp": "1732400001000000001"}  # past 2**53, still exact
    assert (subscribed["book"], subscribed["instrumentId"], subscribed["venueId"], subscribed["depthCapped"]) == (
        "binance:BTC-USDT",
        1,
        3,
        True,
    )
    assert unknown["type"] == "news"


def test_js_decoder_rejects_truncated_and_malformed_frames(node: str) -> None:
    good = book(DELTA, 1, [(10**12, 10**9)], [])
    frames = [good[:-1], b"\x02" + good[1:], good[:20], binary.encode_error(1, "code", "message")[:-1]]
    cases = [{"op": "decode", "frames": [*map(hexed, frames), {"text": "{not json"}, {"text": "[]"}]}]
    assert run_js(node, cases)[0] == [{"error": "DecodeError"}] * 6


# ---- Local books: the same scenario in Python and JavaScript ------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A frame, and the book after applying it: `applied` is apply()'s answer, gap is (expected, received)."""

    frame: bytes | str
    applied: bool
    sequence: int | None
    is_in_sync: bool
    gap: tuple[int | None, int] | None = None
    bids: list[list[str]] | None = None  # best first; None: not checked
    asks: list[list[str]] | None = None
    is_stale: bool = False


SCENARIO = [
    Step(book(DELTA, 5, [(100, 1)], []), applied=False, sequence=None, is_in_sync=False, gap=(None, 5), bids=[]),
    Step(
        book(SNAPSHOT, 10, [(9900, 200000000), (10000, 100000000)], [(10100, 100000000)], reason="subscribe"),
        applied=True,
        sequence=10,
        is_in_sync=True,
        bids=[["100", "1"], ["99", "2"]],
        asks=[["101", "1"]],
    ),
    Step(
        book(DELTA, 11, [(10000, 0)], [(10250, 300000000), (10100, 50000000)]),
        applied=True,
        sequence=11,
        is_in_sync=True,
        bids=[["99", "2"]],
        asks=[["101", "0.5"], ["102.5", "3"]],
    ),
    Step(binary.encode_heartbeat(BTC, 0, 11, TS), applied=True, sequence=11, is_in_sync=True),
    Step(
        book(DELTA, 13, [(9800, 1)], []), applied=False, sequence=11, is_in_sync=False, gap=(12, 13), bids=[["99", "2"]]
    ),
    Step(
        book(DELTA, 12, [(9800, 1)], []), applied=False, sequence=11, is_in_sync=False, gap=(12, 13), bids=[["99", "2"]]
    ),
    Step(binary.encode_heartbeat(BTC, 0, 14, TS), applied=False, sequence=11, is_in_sync=False, gap=(12, 13)),
    Step(
        book(SNAPSHOT, 14, [(9700, 100000000)], [], reason="resync"),
        applied=True,
        sequence=14,
        is_in_sync=True,
        bids=[["97", "1"]],
        asks=[],
    ),
    Step(binary.encode_heartbeat(BTC, 0, 15, TS), applied=False, sequence=14, is_in_sync=False, gap=(15, 15)),
    # After a platform reset the sequence may go down: a snapshot is taken whatever its sequence.
    Step(book(SNAPSHOT, 3, [(9600, 1)], [(9700, 1)], reason="reset"), applied=True, sequence=3, is_in_sync=True),
    Step(binary.encode_stale(BTC, 0, 4, TS, "checksum mismatch"), True, 4, is_in_sync=False, is_stale=True),
    Step(binary.encode_heartbeat(BTC, 0, 4, TS), applied=True, sequence=4, is_in_sync=False, is_stale=True),
    Step(book(SNAPSHOT, 9, [], [(9700, 1)], reason="reset"), applied=True, sequence=9, is_in_sync=True, bids=[]),
    Step(
        json_book(DELTA, 10, [["96.00", "0.25000000"]], [["97", "0"]]),
        applied=True,
        sequence=10,
        is_in_sync=True,
        bids=[["96", "0.25"]],
        asks=[],
    ),
    Step(json_book(DELTA, 10, [], []), applied=False, sequence=10, is_in_sync=False, gap=(11, 10)),
    Step(json_book(SNAPSHOT, 20, [], [], reason="resync"), applied=True, sequence=20, is_in_sync=True),
    Step(binary.encode_stale(BTC, 0, 22, TS, "gap"), False, 20, is_in_sync=False, gap=(21, 22), is_stale=True),
]


def frame_item(frame: bytes | str) -> dict[str, str]:
    return {"hex": frame.hex()} if isinstance(frame, bytes) else {"text": frame}


def test_python_local_book_detects_gaps_and_resets_on_every_snapshot() -> None:
    local = LocalBook("consolidated:BTC-USDT")
    for number, step in enumerate(SCENARIO):
        message = decode_binary(step.frame) if isinstance(step.frame, bytes) else parse_json(step.frame)
        assert isinstance(message, BookMessage | Heartbeat | Stale)
        applied = local.apply(message)
        seen = (applied, local.sequence, local.is_in_sync, local.is_stale)
        assert seen == (step.applied, step.sequence, step.is_in_sync, step.is_stale), f"step {number}"
        assert (None if local.gap is None else (local.gap.expected, local.gap.received)) == step.gap, f"step {number}"
        if step.bids is not None:
            assert [[canonical(p), canonical(q)] for p, q in local.bid_levels()] == step.bids, f"step {number}"
        if step.asks is not None:
            assert [[canonical(p), canonical(q)] for p, q in local.ask_levels()] == step.asks, f"step {number}"


def test_js_local_book_detects_gaps_and_resets_on_every_snapshot(node: str) -> None:
    states = run_js(node, [{"op": "book", "frames": [frame_item(step.frame) for step in SCENARIO]}])[0]
    for number, (step, state) in enumerate(zip(SCENARIO, states, strict=True)):
        sequence = None if state["sequence"] is None else int(state["sequence"])
        assert (state["applied"], sequence, state["inSync"], state["isStale"]) == (
            step.applied,
            step.sequence,
            step.is_in_sync,
            step.is_stale,
        ), f"step {number}"
        gap = state["gap"] and (
            state["gap"]["expected"] and int(state["gap"]["expected"]),
            int(state["gap"]["received"]),
        )
        assert gap == step.gap, f"step {number}"
        if step.bids is not None:
            assert state["bids"] == step.bids, f"step {number}"
            assert state["bestBid"] == (step.bids[0] if step.bids else None)
        if step.asks is not None:
            assert state["asks"] == step.asks, f"step {number}"
            assert state["bestAsk"] == (step.asks[0] if step.asks else None)


def test_js_local_book_sorts_prices_as_numbers_not_as_text(node: str) -> None:
    levels = [(99_00, 1), (100_00, 1), (9_50, 1), (100_05, 1), (1000_00, 1)]
    frame = book(SNAPSHOT, 1, levels, levels, reason="subscribe")
    state = run_js(node, [{"op": "book", "frames": [frame_item(frame)]}])[0][0]
    assert [price for price, _ in state["bids"]] == ["1000", "100.05", "100", "99", "9.5"]
    assert [price for price, _ in state["asks"]] == ["9.5", "99", "100", "100.05", "1000"]


def canonical(value: Decimal) -> str:
    """The server's decimal text for a Decimal: no exponent, no trailing zeros."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---- The asyncio client against a scripted server -------------------------------------------------------------


@dataclass
class Script:
    """A loopback server that plays one handler per connection and records what the client sent."""

    handlers: list[Callable[[ServerConnection], Awaitable[None]]]
    paths: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        self.authorizations.append(ws.request.headers.get("Authorization"))
        await self.handlers[len(self.paths) - 1](ws)

    async def receive_op(self, ws: ServerConnection) -> dict[str, Any]:
        op: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        self.received.append(op)
        return op


def subscribed(pair: str, venue: str, instrument_id: int, venue_id: int, format: str) -> str:
    return json.dumps(
        {
            "type": "subscribed",
            "id": None,
            "pair": pair,
            "venue": venue,
            "book": f"{venue}:{pair}",
            "instrument_id": instrument_id,
            "venue_id": venue_id,
            "depth": 20,
            "depth_capped": False,
            "price_decimals": 2,
            "size_decimals": 8,
            "format": format,
        }
    )


async def collect(
    script: Script, stream_factory: Callable[[str], BookStream], until: Callable[[Update], bool]
) -> list[Update]:
    updates: list[Update] = []
    async with serve(script.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        stream = stream_factory(f"ws://127.0.0.1:{port}")

        async def consume() -> None:
            async for update in stream:
                updates.append(update)
                if until(update):
                    await stream.close()

        await asyncio.wait_for(consume(), 10)
    return updates


def test_python_client_resyncs_on_a_gap_and_resumes_with_since_sequence_after_a_drop() -> None:
    async def first(ws: ServerConnection) -> None:
        await ws.send(subscribed("BTC-USDT", "consolidated", BTC, 0, "json"))
        await ws.send(json_book(SNAPSHOT, 10, [["100", "1"]], [["101", "2"]], reason="subscribe"))
        await ws.send(json_book(DELTA, 11, [["100", "0"]], [], receive_timestamp=TS - 1))
        await ws.send(json_book(DELTA, 13, [["99", "5"]], [], receive_timestamp=TS - 1))  # 12 is missing
        op = await script.receive_op(ws)
        assert {k: op[k] for k in ("op", "pair", "venue")} == {
            "op": "resync",
            "pair": "BTC-USDT",
            "venue": "consolidated",
        }
        await ws.send(json_book(SNAPSHOT, 13, [["99", "5"]], [["101", "2"]], reason="resync"))
        await ws.send(json_book(DELTA, 14, [["98", "1"]], [], receive_timestamp=TS - 1))
        await ws.close(4008, "slow consumer")  # reconnecting is the cure

    async def second(ws: ServerConnection) -> None:
        await ws.send(subscribed("BTC-USDT", "consolidated", BTC, 0, "json"))
        await ws.send(json_book(DELTA, 15, [["97", "1"]], [], receive_timestamp=TS - 1))
        await ws.wait_closed()

    script = Script([first, second])
    updates = asyncio.run(
        collect(
            script,
            lambda url: BookStream(
                url, "alice-secret", [Subscription("BTC/USDT")], clock_ns=lambda: TS + 1500, reconnect_delay_s=0.01
            ),
            until=lambda update: isinstance(update.message, BookMessage) and update.message.sequence == 15,
        )
    )
    assert script.authorizations == ["Bearer alice-secret", "Bearer alice-secret"]
    assert script.paths == [
        "/api/hft/ws/orderbook/BTC%2FUSDT?format=json&venue=consolidated",
        "/api/hft/ws/orderbook/BTC%2FUSDT?format=json&venue=consolidated&since_sequence=14",
    ]
    assert [op["op"] for op in script.received] == ["resync"]
    book_updates = [u for u in updates if isinstance(u.message, BookMessage)]
    assert [u.message.sequence for u in book_updates] == [10, 11, 13, 13, 14, 15]
    assert {u.latency_ns for u in book_updates} == {1500}
    local = book_updates[-1].book
    assert local is not None
    assert local.is_in_sync
    assert local.sequence == 15
    assert local.bid_levels() == [(Decimal(99), Decimal(5)), (Decimal(98), Decimal(1)), (Decimal(97), Decimal(1))]


def test_python_client_keeps_binary_books_of_several_subscriptions_apart() -> None:
    async def only(ws: ServerConnection) -> None:
        await ws.send(subscribed("BTC-USDT", "consolidated", BTC, 0, "binary"))
        await ws.send(book(SNAPSHOT, 10, [(10000, 100000000)], [], reason="subscribe"))
        op = await script.receive_op(ws)
        assert {k: op[k] for k in ("op", "pair", "venue", "depth")} == {
            "op": "subscribe",
            "pair": "ETH-USDT",
            "venue": "binance",
            "depth": 5,
        }
        await ws.send(subscribed("ETH-USDT", "binance", ETH, BINANCE, "binary"))
        await ws.send(
            binary.encode_book(SNAPSHOT, ETH, BINANCE, 500, 2, 8, None, TS, TS, [(350000, 7)], [], reason="subscribe")
        )
        await ws.send(binary.encode_book(DELTA, ETH, BINANCE, 501, 2, 8, None, TS, TS, [(350001, 8)], []))
        await ws.send(book(DELTA, 11, [(10001, 1)], []))
        await ws.send(binary.encode_trade(ETH, BINANCE, "T1", 350000, 7, "sell", None, TS, 2, 8))
        await ws.send(binary.encode_heartbeat(BTC, 0, 11, TS))
        await ws.wait_closed()

    script = Script([only])
    updates = asyncio.run(
        collect(
            script,
            lambda url: BookStream(
                url, "k", [Subscription("BTC-USDT"), Subscription("eth-usdt", "binance", depth=5)], format="binary"
            ),
            until=lambda update: isinstance(update.message, Heartbeat),
        )
    )
    assert "format=binary" in script.paths[0]
    trade = next(u for u in updates if isinstance(u.message, Trade))
    assert trade.book is not None
    assert trade.book.key == "binance:ETH-USDT"
    btc_book, eth_book = updates[-1].book, trade.book
    assert btc_book is not None
    assert (btc_book.key, btc_book.sequence, btc_book.is_in_sync) == ("consolidated:BTC-USDT", 11, True)
    assert btc_book.bid_levels() == [(Decimal("100.01"), Decimal("0.00000001")), (100, 1)]
    assert (eth_book.sequence, eth_book.bid_levels()) == (
        501,
        [(Decimal("3500.01"), Decimal("8E-8")), (3500, Decimal("7E-8"))],
    )


def test_python_client_stops_on_a_close_code_that_reconnecting_cannot_fix() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.send('{"type": "error", "id": null, "code": "invalid_key", "message": "Unknown API key."}')
        await ws.close(4401, "invalid key")

    script = Script([refuse])
    with pytest.raises(StreamClosed) as closed:
        asyncio.run(
            collect(script, lambda url: BookStream(url, "nope", [Subscription("BTC-USDT")]), until=lambda _: False)
        )
    assert closed.value.code == 4401
    assert len(script.paths) == 1


# ---- The instrument list maps venue ids -------------------------------------------------------------------------


def test_instruments_list_the_venue_ids_of_the_binary_protocol(alice: Persona) -> None:
    from apps.orderbook.models import Venue

    body = alice.client().get("/api/hft/instruments").json()
    listings = [listing for instrument in body for listing in instrument["venues"]]
    assert listings
    ids = {venue.slug: venue.pk for venue in Venue.objects.all()}
    assert all(listing["venue_id"] == ids[listing["venue"]] for listing in listings)
    assert 0 not in ids.values()  # 0 is the consolidated book
