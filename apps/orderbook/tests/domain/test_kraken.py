"""Kraken v1 and v2 book protocols: the real recording, the published v2 vector, faults and invariants."""

from __future__ import annotations

import json
import zlib
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.events import BookChange, BookStale, InstrumentSpec, Trade
from apps.orderbook.domain.fixedpoint import decimals_of
from apps.orderbook.domain.protocol import Output, Reconnect, Send, VenueProtocol, Verified
from apps.orderbook.domain.venues.kraken import (
    SILENCE_TIMEOUT_NS,
    SNAPSHOT_TIMEOUT_NS,
    KrakenV1Protocol,
    KrakenV2Protocol,
)
from apps.orderbook.tests.domain.clients import apply_to_client

VENUES = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "venues"
RECORDING = VENUES / "kraken_v1_2021-04-17.replay.jsonl"
VECTORS = VENUES / "checksum_test_vectors.json"
XBT_USD = InstrumentSpec("BTC-USD", "XBT/USD", price_exp=2, size_exp=8)
BTC_USD = InstrumentSpec("BTC-USD", "BTC/USD", price_exp=1, size_exp=8)
T0 = 1_618_678_132_000_000_000
T = TypeVar("T")


def crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """The documented Kraken checksum, written out again: top 10 asks, top 10 bids, '.' and leading 0s gone."""
    part = "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0") for p, q in asks[:10] + bids[:10])
    return zlib.crc32(part.encode())


def of(outputs: list[Output], kind: type[T]) -> list[T]:
    return [o for o in outputs if isinstance(o, kind)]


class KrakenV1Venue:
    """The venue's side of one v1 pair: keeps the true book and writes frames with the checksum it would send."""

    def __init__(self, pair: str = "XBT/USD", depth: int = 10) -> None:
        self.pair, self.depth = pair, depth
        self.levels: dict[str, dict[Decimal, tuple[str, str]]] = {BID: {}, ASK: {}}

    def snapshot(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> str:
        self.levels = {BID: {}, ASK: {}}
        self._set(BID, bids)
        self._set(ASK, asks)
        book = {
            "as": [[p, q, "1618678133.383209"] for p, q in asks],
            "bs": [[p, q, "1618678133.383209"] for p, q in bids],
        }
        return orjson.dumps([42, book, f"book-{self.depth}", self.pair]).decode()

    def update(
        self,
        asks: list[tuple[str, str]] | None = None,
        bids: list[tuple[str, str]] | None = None,
        *,
        sent_asks: list[tuple[str, str]] | None = None,
    ) -> str:
        """Apply and truncate like Kraken, then write the frame; `sent_asks` replaces what goes on the wire."""
        asks, bids = asks or [], bids or []
        self._set(ASK, asks)
        self._set(BID, bids)
        parts: list[dict[str, Any]] = []
        if asks:
            parts.append({"a": [[p, q, "1618678134.000001"] for p, q in (sent_asks or asks)]})
        if bids or not parts:
            parts.append({"b": [[p, q, "1618678134.000002", "r"] for p, q in bids]})
        parts[-1]["c"] = str(self.checksum())
        return orjson.dumps([42, *parts, f"book-{self.depth}", self.pair]).decode()

    def top(self, side: str) -> list[tuple[str, str]]:
        return [self.levels[side][p] for p in sorted(self.levels[side], reverse=side == BID)]

    def checksum(self) -> int:
        return crc(self.top(ASK), self.top(BID))

    def _set(self, side: str, levels: list[tuple[str, str]]) -> None:
        for price, qty in levels:
            if Decimal(qty) == 0:
                self.levels[side].pop(Decimal(price), None)
            else:
                self.levels[side][Decimal(price)] = (price, qty)
        keep = self.top(side)[: self.depth]
        self.levels[side] = {Decimal(p): (p, q) for p, q in keep}


def ladder(side: str, count: int, start: int = 0) -> list[tuple[str, str]]:
    """`count` levels around 100.0, best first: bids 99.9, 99.8, ... and asks 100.1, 100.2, ..."""
    step = -1 if side == BID else 1
    return [(f"{(1000 + step * (start + i + 1)) / 10:.1f}", f"{i + 1}.00000000") for i in range(count)]


def live_v1(depth: int = 10) -> tuple[KrakenV1Protocol, KrakenV1Venue]:
    protocol = KrakenV1Protocol([XBT_USD], depth=depth)
    venue = KrakenV1Venue(depth=depth)
    protocol.on_open(T0)
    outputs = protocol.on_message(venue.snapshot(ladder(BID, depth), ladder(ASK, depth)), T0)
    assert of(outputs, BookChange)[0].is_reset
    return protocol, venue


# --- the real recording -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay() -> dict[str, Any]:
    """Each connection's `recv` frames, in order, into its own KrakenV1Protocol; every output collected."""
    if not RECORDING.exists():
        pytest.skip(f"recording missing: {RECORDING}")
    records = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    price_exp, size_exp = _exponents_seen(records)
    outputs: list[Output] = []
    protocols: dict[str, KrakenV1Protocol] = {}
    pairs: dict[str, list[InstrumentSpec]] = {}
    clients: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: {BID: {}, ASK: {}})
    for conn in sorted({r["conn"] for r in records if r["t"] == "recv"}):
        subscribe = next(json.loads(r["data"]) for r in records if r["t"] == "send" and r["conn"] == conn)
        specs = [InstrumentSpec(p.replace("/", "-"), p, price_exp[p], size_exp[p]) for p in subscribe["pair"]]
        protocol = KrakenV1Protocol(specs, depth=subscribe["subscription"].get("depth", 1000))
        protocols[conn], pairs[conn] = protocol, specs
        protocol.on_open(T0)
        for record in records:
            if record["t"] == "recv" and record["conn"] == conn:
                now_ns = int(record["ts"] * 1e6) * 1000
                for output in protocol.on_message(record["data"], now_ns):
                    outputs.append(output)
                    if isinstance(output, BookChange):
                        apply_to_client(clients[f"{conn}:{output.symbol}"], output)
    return {"records": records, "outputs": outputs, "protocols": protocols, "pairs": pairs, "clients": clients}


def _exponents_seen(records: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """v1 writes every pair's levels and trades with a fixed number of decimals: the most seen is the exponent."""
    price_exp: dict[str, int] = defaultdict(int)
    size_exp: dict[str, int] = defaultdict(int)
    for record in records:
        message = json.loads(record["data"]) if record["t"] == "recv" else None
        if not isinstance(message, list):
            continue
        pair = message[-1]
        if message[-2] == "trade":
            rows = message[1]
        elif message[-2].startswith("book"):
            rows = [row for part in message[1:-2] for key in ("as", "bs", "a", "b") for row in part.get(key, [])]
        else:
            continue
        for row in rows:
            price_exp[pair] = max(price_exp[pair], decimals_of(row[0]))
            size_exp[pair] = max(size_exp[pair], decimals_of(row[1]))
    return price_exp, size_exp


def test_recording_every_checksum_verifies_and_no_book_goes_stale(replay: dict[str, Any]) -> None:
    checks = Counter(o.is_ok for o in of(replay["outputs"], Verified) if o.check == "checksum")
    assert checks == {True: 4269}
    assert of(replay["outputs"], BookStale) == []
    assert not of(replay["outputs"], Send)  # no resubscribe was needed
    resets = [o for o in of(replay["outputs"], BookChange) if o.is_reset]
    assert len(resets) == 10
    assert len({o.symbol for o in resets}) == 10


def test_recording_book_subscription_depth_comes_from_the_send_record(replay: dict[str, Any]) -> None:
    assert replay["protocols"]["KRAKEN.ws.50"].depth == 1000
    assert replay["protocols"]["KRAKEN.ws.50"].ws_path() == "/"


def test_recording_clients_fed_our_events_equal_our_books(replay: dict[str, Any]) -> None:
    protocol = replay["protocols"]["KRAKEN.ws.50"]
    for spec in replay["pairs"]["KRAKEN.ws.50"]:
        book = protocol.book(spec.venue_symbol)
        client = replay["clients"][f"KRAKEN.ws.50:{spec.symbol}"]
        assert protocol.is_live(spec.venue_symbol)
        assert sorted(client[BID].items()) == sorted(book.top(BID))
        assert sorted(client[ASK].items()) == sorted(book.top(ASK))
        assert book.depth(BID) <= 1000
        assert book.depth(ASK) <= 1000


def test_recording_trades_carry_the_takers_side(replay: dict[str, Any]) -> None:
    sent = [
        (message[-1], row[3])
        for record in replay["records"]
        if record["t"] == "recv" and isinstance(message := json.loads(record["data"]), list) and message[-2] == "trade"
        for row in message[1]
    ]
    trades = of(replay["outputs"], Trade)
    assert len(trades) == len(sent) == 10
    assert [(t.symbol, t.aggressor) for t in trades] == [
        (pair.replace("/", "-"), "buy" if side == "b" else "sell") for pair, side in sent
    ]
    assert {t.aggressor for t in trades} <= {"buy", "sell"}
    assert all(t.exchange_ts_ns and t.exchange_ts_ns > T0 for t in trades)


# --- v2: the published checksum example --------------------------------------------------------------


def v2_book_frame(kind: str, symbol: str, bids: list[dict[str, str]], asks: list[dict[str, str]], checksum: int) -> str:
    """JSON numbers written from their text, as Kraken sends them (never through a float)."""

    def levels(rows: list[dict[str, str]]) -> str:
        return "[" + ",".join(f'{{"price":{r["price"]},"qty":{r["qty"]}}}' for r in rows) + "]"

    entry = f'{{"symbol":"{symbol}","bids":{levels(bids)},"asks":{levels(asks)},"checksum":{checksum},'
    entry += '"timestamp":"2023-10-06T17:35:55.440295Z"}'
    return f'{{"channel":"book","type":"{kind}","data":[{entry}]}}'


def live_v2() -> KrakenV2Protocol:
    """BTC/USD live with one bid 100.0 x 1 and one ask 100.5 x 2.5; the checksum over their 1/8-decimal text."""
    protocol = KrakenV2Protocol([BTC_USD])
    bids, asks = [{"price": "100.0", "qty": "1"}], [{"price": "100.5", "qty": "2.5"}]
    checksum = crc([("100.5", "2.50000000")], [("100.0", "1.00000000")])
    outputs = protocol.on_message(v2_book_frame("snapshot", "BTC/USD", bids, asks, checksum), T0)
    assert of(outputs, Verified)[0].is_ok
    assert protocol.is_live("BTC/USD")
    return protocol


@pytest.fixture
def vector() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.skip(f"test vectors missing: {VECTORS}")
    vectors = json.loads(VECTORS.read_text(), parse_float=str, parse_int=str)
    return dict(vectors["kraken_v2_book_checksum"])


def test_v2_published_checksum_example_verifies(vector: dict[str, Any]) -> None:
    spec = InstrumentSpec("BTC-USD", vector["symbol"], int(vector["price_precision"]), int(vector["qty_precision"]))
    protocol: VenueProtocol = KrakenV2Protocol([spec])
    frame = v2_book_frame("snapshot", spec.venue_symbol, vector["bids"], vector["asks"], vector["expected_checksum"])
    outputs = protocol.on_message(frame, T0)
    assert of(outputs, Verified) == [Verified("BTC-USD", "checksum", True)]
    reset = of(outputs, BookChange)[0]
    assert reset.is_reset
    assert reset.exchange_ts_ns == 1_696_613_755_440_295_000
    assert reset.bids[0] == (452835, 10_000_000)  # 45283.5 and 0.1 at exponents 1 and 8


def test_v2_levels_keep_the_text_at_the_pairs_precision(vector: dict[str, Any]) -> None:
    spec = InstrumentSpec("BTC-USD", vector["symbol"], int(vector["price_precision"]), int(vector["qty_precision"]))
    protocol = KrakenV2Protocol([spec])
    frame = v2_book_frame("snapshot", spec.venue_symbol, vector["bids"], vector["asks"], vector["expected_checksum"])
    protocol.on_message(frame, T0)
    assert protocol.book("BTC/USD").top_text(BID, 4)[3] == ("45281.0", "0.10000000")


def test_v2_update_with_a_wrong_checksum_goes_stale_and_resubscribes(vector: dict[str, Any]) -> None:
    protocol = KrakenV2Protocol([BTC_USD])
    protocol.on_open(T0)
    protocol.on_message(v2_book_frame("snapshot", "BTC/USD", vector["bids"], vector["asks"], 3310070434), T0)
    assert protocol.is_live("BTC/USD")
    update = v2_book_frame("update", "BTC/USD", [{"price": "45283.5", "qty": "0.2"}], [], 3310070434)

    outputs = protocol.on_message(update, T0 + 1)

    assert [type(o) for o in outputs] == [Verified, BookStale, Send, Send]
    assert not of(outputs, Verified)[0].is_ok
    assert [orjson.loads(s.text)["method"] for s in of(outputs, Send)] == ["unsubscribe", "subscribe"]
    assert orjson.loads(of(outputs, Send)[1].text)["params"] == {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}
    assert not protocol.is_live("BTC/USD")


def test_v2_snapshot_with_a_wrong_checksum_is_not_published_and_resubscribes() -> None:
    protocol = KrakenV2Protocol([BTC_USD])
    frame = v2_book_frame("snapshot", "BTC/USD", [{"price": "100.0", "qty": "1"}], [], 12345)

    outputs = protocol.on_message(frame, T0)

    assert [type(o) for o in outputs] == [Verified, Send, Send]  # never live: nothing to mark stale
    assert not of(outputs, Verified)[0].is_ok
    assert not protocol.is_live("BTC/USD")


def test_v2_update_with_the_right_checksum_is_a_delta() -> None:
    protocol = live_v2()
    new_bids = [{"price": "100.0", "qty": "0"}, {"price": "99.9", "qty": "3"}]
    checksum = crc([("100.5", "2.50000000")], [("99.9", "3.00000000")])

    outputs = protocol.on_message(v2_book_frame("update", "BTC/USD", new_bids, [], checksum), T0 + 1)

    assert [type(o) for o in outputs] == [BookChange, Verified]
    assert of(outputs, BookChange)[0].bids == ((1000, 0), (999, 300_000_000))
    assert of(outputs, Verified)[0].is_ok


def test_v2_level_finer_than_the_pairs_precision_goes_stale() -> None:
    protocol = live_v2()

    outputs = protocol.on_message(v2_book_frame("update", "BTC/USD", [{"price": "99.95", "qty": "1"}], [], 0), T0)

    assert [type(o) for o in outputs] == [BookStale, Send, Send]
    assert "bad level" in of(outputs, BookStale)[0].reason


def test_v2_trades_carry_the_takers_side() -> None:
    protocol = KrakenV2Protocol([BTC_USD])
    frame = (
        '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":45283.5,"qty":0.001,'
        '"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}'
    )
    (trade,) = protocol.on_message(frame, T0)
    assert trade == Trade("kraken", "BTC-USD", "4665906", 452835, 100_000, "sell", 1_695_628_177_708_706_000, T0)


def test_v2_subscribes_book_and_trades_without_a_trade_snapshot() -> None:
    protocol = KrakenV2Protocol([BTC_USD], depth=25)
    frames = [orjson.loads(s.text) for s in of(protocol.on_open(T0), Send)]
    assert protocol.ws_path() == "/v2"
    assert frames == [
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 25}},
        {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"], "snapshot": False}},
    ]


# --- v1 faults -------------------------------------------------------------------------------------


def test_v1_subscribes_book_at_depth_and_trades() -> None:
    protocol = KrakenV1Protocol([XBT_USD], depth=100)
    assert [orjson.loads(s.text) for s in of(protocol.on_open(T0), Send)] == [
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 100}},
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "trade"}},
    ]


def test_v1_corrupted_level_fails_the_checksum_goes_stale_and_waits_for_the_next_snapshot() -> None:
    protocol, venue = live_v1()
    good = venue.update(asks=[("100.1", "5.00000000")])
    assert of(protocol.on_message(good, T0 + 1), Verified)[0].is_ok
    corrupted = venue.update(asks=[("100.2", "7.00000000")], sent_asks=[("100.2", "7.00000001")])

    outputs = protocol.on_message(corrupted, T0 + 2)

    assert [type(o) for o in outputs] == [Verified, BookStale, Send, Send]
    assert not of(outputs, Verified)[0].is_ok
    assert outputs[1] == BookStale("kraken", "BTC-USD", of(outputs, Verified)[0].detail, T0 + 2)
    assert [orjson.loads(s.text) for s in of(outputs, Send)] == [
        {"event": "unsubscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}},
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}},
    ]
    assert protocol.on_message(venue.update(bids=[("99.9", "2.00000000")]), T0 + 3) == []  # old subscription's tail

    outputs = protocol.on_message(venue.snapshot(ladder(BID, 3), ladder(ASK, 2)), T0 + 4)

    assert len(outputs) == 1
    assert of(outputs, BookChange)[0].is_reset
    assert of(outputs, BookChange)[0].bids == ((9990, 100_000_000), (9980, 200_000_000), (9970, 300_000_000))
    assert of(protocol.on_message(venue.update(bids=[("99.9", "4.00000000")]), T0 + 5), Verified)[0].is_ok


def test_v1_update_beyond_the_depth_truncates_and_the_delta_carries_the_removals() -> None:
    protocol, venue = live_v1(depth=10)
    book = protocol.book("XBT/USD")
    client: dict[str, dict[int, int]] = {BID: {}, ASK: {}}
    apply_to_client(client, BookChange("kraken", "BTC-USD", tuple(book.top(BID)), tuple(book.top(ASK)), True, None, T0))
    # Two better asks push the two worst (101.0 and 100.9) out of the top 10; Kraken sends no delete for them.
    frame = venue.update(asks=[("100.05", "1.00000000"), ("100.01", "1.00000000")])

    outputs = protocol.on_message(frame, T0 + 1)

    assert of(outputs, Verified)[0].is_ok
    change = of(outputs, BookChange)[0]
    assert change.asks == ((10005, 100_000_000), (10001, 100_000_000), (10100, 0), (10090, 0))
    assert change.bids == ()
    assert book.depth(ASK) == 10
    apply_to_client(client, change)
    assert sorted(client[ASK].items()) == sorted(book.top(ASK))


def test_v1_republished_level_applies_like_an_update() -> None:
    protocol, venue = live_v1()
    outputs = protocol.on_message(venue.update(bids=[("99.9", "1.50000000")]), T0 + 1)  # marked "r"
    assert of(outputs, BookChange)[0].bids == ((9990, 150_000_000),)
    assert of(outputs, Verified)[0].is_ok


def test_v1_update_in_two_dicts_is_checked_once_all_of_it_is_applied() -> None:
    protocol, venue = live_v1()
    # The new bid at 100.1 crosses the old best ask until the ask's delete (in the other dict) is applied.
    frame = venue.update(asks=[("100.1", "0.00000000")], bids=[("100.1", "2.00000000")])

    outputs = protocol.on_message(frame, T0 + 1)

    assert [type(o) for o in outputs] == [BookChange, Verified]
    assert of(outputs, BookChange)[0].asks == ((10010, 0),)
    assert of(outputs, BookChange)[0].bids == ((10010, 200_000_000), (9900, 0))  # and 99.0 falls out of the top 10
    assert of(outputs, Verified)[0].is_ok


def test_v1_crossed_book_goes_stale_and_resubscribes() -> None:
    protocol, venue = live_v1()
    outputs = protocol.on_message(venue.update(bids=[("100.2", "1.00000000")]), T0 + 1)
    assert [type(o) for o in outputs] == [Verified, BookStale, Send, Send]
    assert of(outputs, Verified)[0].is_ok
    assert of(outputs, BookStale)[0].reason == "crossed book"


def test_v1_level_finer_than_the_pairs_precision_goes_stale() -> None:
    protocol, venue = live_v1()
    outputs = protocol.on_message(venue.update(bids=[("99.955", "1.00000000")]), T0 + 1)
    assert [type(o) for o in outputs] == [BookStale, Send, Send]
    assert "bad level" in of(outputs, BookStale)[0].reason


MALFORMED_V1 = [
    "",
    "not json",
    "[",
    "null",
    "42",
    '"text"',
    "[]",
    '[1, {"a": []}, "book-10"]',
    '[1, {"a": [["100.1"]], "c": "1"}, "book-10", "XBT/USD"]',
    '[1, {"a": [[100.1, 1.0, 1.0]], "c": "1"}, "book-10", "XBT/USD"]',
    '[1, {"a": [["100.1", "1.0", "x"]], "c": "1"}, "book-10", "XBT/USD"]',
    '[1, {"a": [["100.1", "1.0", "1.0"]]}, "book-10", "XBT/USD"]',
    '[1, {"a": [["100.1", "1.0", "1.0"]], "c": "abc"}, "book-10", "XBT/USD"]',
    '[1, {"a": [["-100.1", "1.0", "1.0"]], "c": "1"}, "book-10", "XBT/USD"]',
    '[1, "a", "book-10", "XBT/USD"]',
    '[1, {"as": 5}, "book-10", "XBT/USD"]',
    '[1, {"as": [["1e999999999", "1", "1"]]}, "book-10", "XBT/USD"]',
    '[1, [["100.1"]], "trade", "XBT/USD"]',
    '[1, [["100.1", "1.0", "1.0", "x", "l", ""]], "trade", "XBT/USD"]',
    '[1, 7, "trade", "XBT/USD"]',
    '[1, {"a": []}, 5, ["XBT/USD"]]',
    '{"event": "subscriptionStatus", "status": "error", "pair": ["XBT/USD"]}',
    '{"event": "subscriptionStatus", "status": "error"}',
    '{"event": 5}',
    "[" * 100_000,
]


@pytest.mark.parametrize("frame", MALFORMED_V1)
def test_v1_malformed_frames_never_raise_and_never_publish(frame: str) -> None:
    protocol, _ = live_v1()
    outputs = protocol.on_message(frame, T0 + 1)
    assert not of(outputs, BookChange)
    assert not of(outputs, Trade)
    if of(outputs, BookStale):
        assert [type(o) for o in outputs] == [BookStale, Send, Send]


MALFORMED_V2 = [
    "",
    "{",
    "[]",
    '{"channel": "book"}',
    '{"channel": "book", "type": "update", "data": 5}',
    '{"channel": "book", "type": "update", "data": [5, null]}',
    '{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD"}]}',
    '{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [{"price": "x", "qty": 1}], '
    '"asks": [], "checksum": 1}]}',
    '{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [{"price": NaN, "qty": 1}], '
    '"asks": [], "checksum": 1}]}',
    '{"channel": "book", "type": "snapshot", "data": [{"symbol": "BTC/USD", "bids": [[1, 2]], "asks": [], '
    '"checksum": 1}]}',
    '{"channel": "book", "type": "update", "data": [{"symbol": ["BTC/USD"]}]}',
    '{"channel": "trade", "type": "update", "data": [{"symbol": "BTC/USD", "side": "buy", "price": true}]}',
    '{"channel": "trade", "type": "update", "data": [{"symbol": "BTC/USD", "side": "up", "price": 1, "qty": 1}]}',
    '{"channel": "status", "data": 3}',
    '{"method": "subscribe", "success": false, "symbol": 5}',
    "[" * 100_000,
]


@pytest.mark.parametrize("frame", MALFORMED_V2)
def test_v2_malformed_frames_never_raise_and_never_publish(frame: str) -> None:
    protocol = live_v2()
    outputs = protocol.on_message(frame, T0 + 1)
    assert not of(outputs, BookChange)
    assert not of(outputs, Trade)


def test_v1_subscription_error_stales_a_live_pair_and_the_watchdog_resubscribes() -> None:
    protocol, _ = live_v1()
    error = {
        "errorMessage": "Already subscribed",
        "event": "subscriptionStatus",
        "pair": "XBT/USD",
        "status": "error",
        "subscription": {"name": "book", "depth": 10},
    }

    outputs = protocol.on_message(orjson.dumps(error).decode(), T0 + 1)

    assert outputs == [BookStale("kraken", "BTC-USD", "subscription error: Already subscribed", T0 + 1)]
    assert protocol.on_tick(T0 + 2) == []
    for second in range(1, SNAPSHOT_TIMEOUT_NS // 10**9 + 2):
        protocol.on_message('{"event":"heartbeat"}', T0 + second * 10**9)
    resubscribe = protocol.on_tick(T0 + SNAPSHOT_TIMEOUT_NS + 2 * 10**9)
    assert [orjson.loads(s.text)["event"] for s in of(resubscribe, Send)] == ["unsubscribe", "subscribe"]


def test_v1_trade_subscription_error_leaves_the_book_alone() -> None:
    protocol, _ = live_v1()
    error = {
        "errorMessage": "x",
        "event": "subscriptionStatus",
        "pair": "XBT/USD",
        "status": "error",
        "subscription": {"name": "trade"},
    }
    assert protocol.on_message(orjson.dumps(error).decode(), T0 + 1) == []
    assert protocol.is_live("XBT/USD")


def test_silent_connection_reconnects_once() -> None:
    protocol, _ = live_v1()
    assert protocol.on_tick(T0 + SILENCE_TIMEOUT_NS) == []
    assert protocol.on_tick(T0 + SILENCE_TIMEOUT_NS + 1) == [Reconnect("no frame for 10 s")]
    assert protocol.on_tick(T0 + SILENCE_TIMEOUT_NS + 2) == []


def test_close_stales_live_books_and_maintenance_reconnects() -> None:
    protocol, _ = live_v1()
    assert protocol.on_close(T0 + 1) == [BookStale("kraken", "BTC-USD", "disconnected", T0 + 1)]
    assert protocol.on_close(T0 + 2) == []
    status = '{"event":"systemStatus","status":"maintenance","version":"1.8.3"}'
    assert protocol.on_message(status, T0 + 3) == [Reconnect("Kraken system status: maintenance")]


# --- invariant --------------------------------------------------------------------------------------

DEPTH = 10
level_change = st.tuples(
    st.sampled_from([BID, ASK]),
    st.integers(min_value=0, max_value=40),  # distance from the touch in ticks of 0.01
    st.integers(min_value=0, max_value=3),  # quantity in lots; 0 deletes
)


def _text(side: str, distance: int, qty: int) -> tuple[str, str]:
    price = 10_000 - 1 - distance if side == BID else 10_000 + 1 + distance  # 99.99 and below, 100.01 and above
    return f"{price // 100}.{price % 100:02d}", f"{qty}.{qty * 25:08d}"


@settings(max_examples=150, deadline=None)
@given(
    snapshot=st.lists(level_change.filter(lambda c: c[2] > 0), max_size=30),
    updates=st.lists(st.lists(level_change, min_size=1, max_size=8), min_size=1, max_size=25),
)
def test_v1_random_updates_with_true_checksums_never_go_stale_and_match_a_dict_model(
    snapshot: list[tuple[str, int, int]], updates: list[list[tuple[str, int, int]]]
) -> None:
    protocol = KrakenV1Protocol([InstrumentSpec("BTC-USD", "XBT/USD", 2, 8)], depth=DEPTH)
    model: dict[str, dict[int, tuple[str, str]]] = {BID: {}, ASK: {}}
    client: dict[str, dict[int, int]] = {BID: {}, ASK: {}}

    def set_model(changes: list[tuple[str, int, int]]) -> list[tuple[str, str, str]]:
        written = []
        for side, distance, qty in changes:
            price, qty_text = _text(side, distance, qty)
            written.append((side, price, qty_text))
            units = int(price.replace(".", ""))
            if qty:
                model[side][units] = (price, qty_text)
            else:
                model[side].pop(units, None)
        for side in (BID, ASK):
            keep = sorted(model[side], reverse=side == BID)[:DEPTH]
            model[side] = {p: model[side][p] for p in keep}
        return written

    def model_top(side: str) -> list[tuple[str, str]]:
        return [model[side][p] for p in sorted(model[side], reverse=side == BID)]

    written = set_model(snapshot)
    frame = [
        1,
        {
            "as": [[p, q, "1.0"] for s, p, q in written if s == ASK],
            "bs": [[p, q, "1.0"] for s, p, q in written if s == BID],
        },
        "book-10",
        "XBT/USD",
    ]
    outputs = protocol.on_message(orjson.dumps(frame).decode(), T0)
    for update in updates:
        written = set_model(update)
        parts: list[dict[str, Any]] = [
            {"a": [[p, q, "2.0"] for s, p, q in written if s == ASK]},
            {"b": [[p, q, "2.0", "r"] for s, p, q in written if s == BID]},
        ]
        parts[-1]["c"] = str(crc(model_top(ASK), model_top(BID)))
        outputs += protocol.on_message(orjson.dumps([1, *parts, "book-10", "XBT/USD"]).decode(), T0 + 1)

    assert not of(outputs, BookStale)
    assert all(v.is_ok for v in of(outputs, Verified))
    assert len(of(outputs, Verified)) == len(updates)
    book = protocol.book("XBT/USD")
    for side in (BID, ASK):
        expected = [(p, int(model[side][p][1].replace(".", ""))) for p in sorted(model[side], reverse=side == BID)]
        assert book.top(side) == expected
        assert book.top_text(side, DEPTH) == model_top(side)
    for change in of(outputs, BookChange):
        apply_to_client(client, change)
    assert sorted(client[BID].items()) == sorted(book.top(BID))
    assert sorted(client[ASK].items()) == sorted(book.top(ASK))
