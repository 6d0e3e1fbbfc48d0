"""Coinbase Advanced Trade and Exchange protocols: the real 2021 recording, synthetic frames, invariants."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.orderbook.domain.book import ASK, BID, OrderBook
from apps.orderbook.domain.events import BookChange, BookStale, InstrumentSpec, Trade
from apps.orderbook.domain.fixedpoint import decimals_of
from apps.orderbook.domain.protocol import Output, Reconnect, Send, Verified
from apps.orderbook.domain.venues.coinbase import (
    CoinbaseAdvancedProtocol,
    CoinbaseExchangeProtocol,
    parse_iso_ns,
)

NS = 1_000_000_000
VENUES_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "venues"
RECORDING = VENUES_DIR / "coinbase_exchange_2021-04-17.replay.jsonl"

BTC = InstrumentSpec("BTC-USD", "BTC-USD", price_exp=2, size_exp=8)
ETH = InstrumentSpec("ETH-USD", "ETH-USD", price_exp=2, size_exp=8)


def of_type(outputs: Iterable[Output], kind: type) -> list[Any]:
    return [o for o in outputs if isinstance(o, kind)]


# --- ISO times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-04-17T16:43:30.244075Z", 1_618_677_810 * NS + 244_075_000),
        ("2023-02-09T20:32:50.714964855Z", 1_675_974_770 * NS + 714_964_855),
        ("1970-01-01T00:00:00Z", 0),
        ("2024-02-29T00:00:00.5Z", 1_709_164_800 * NS + 500_000_000),
        ("2021-04-17T18:43:30.244075+02:00", 1_618_677_810 * NS + 244_075_000),
        ("2021-04-17T16:43:30", 1_618_677_810 * NS),
        ("2021-04-17T16:43:30.1234567891Z", 1_618_677_810 * NS + 123_456_789),
        ("2021-02-30T00:00:00Z", None),
        ("yesterday", None),
        (1618677810, None),
        (None, None),
    ],
)
def test_iso_times_parse_to_exact_integer_nanoseconds(text: object, expected: int | None) -> None:
    assert parse_iso_ns(text) == expected


# --- the real Exchange recording ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording() -> list[dict[str, Any]]:
    if not RECORDING.exists():
        pytest.skip(f"recording {RECORDING} is missing (CI has it)")
    with RECORDING.open() as lines:
        return [json.loads(line) for line in lines]


def exchange_specs(records: list[dict[str, Any]]) -> list[InstrumentSpec]:
    """Exponents from the most decimals each product shows anywhere in the recording."""
    price_decimals: Counter[str] = Counter()
    size_decimals: Counter[str] = Counter()

    def see(product: str, price: str, size: str) -> None:
        price_decimals[product] = max(price_decimals[product], decimals_of(price))
        size_decimals[product] = max(size_decimals[product], decimals_of(size))

    for message in recv_messages(records):
        product = message.get("product_id", "")
        if message["type"] == "snapshot":
            for price, size in message["bids"] + message["asks"]:
                see(product, price, size)
        elif message["type"] == "l2update":
            for _, price, size in message["changes"]:
                see(product, price, size)
        elif message["type"] in ("match", "last_match"):
            see(product, message["price"], message["size"])
    return [InstrumentSpec(p, p, price_decimals[p], size_decimals[p]) for p in sorted(price_decimals)]


def recv_messages(records: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    return (json.loads(r["data"]) for r in records if r["t"] == "recv")


def test_exchange_recording_rebuilds_every_book_without_stale_crossing_or_trade_gap(
    recording: list[dict[str, Any]],
) -> None:
    specs = exchange_specs(recording)
    assert len(specs) == 10
    protocol = CoinbaseExchangeProtocol(specs, channel="level2")
    (subscribe,) = of_type(protocol.on_open(0), Send)
    recorded = json.loads(next(r["data"] for r in recording if r["t"] == "send"))
    sent = json.loads(subscribe.text)
    assert sent["channels"][0] == "level2"
    assert sorted(sent["product_ids"]) == sorted(recorded["product_ids"])

    outputs: list[Output] = []
    raw_trades: dict[tuple[str, str], str] = {}
    l2updates = 0
    for now_ns, record in enumerate(r for r in recording if r["t"] == "recv"):
        result = protocol.on_message(record["data"], now_ns)
        outputs += result
        message = json.loads(record["data"])
        if message["type"] in ("match", "last_match"):
            raw_trades[(message["product_id"], str(message["trade_id"]))] = message["side"]
        if message["type"] == "l2update":
            l2updates += 1
            book = protocol.book(message["product_id"])
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is not None, record["data"]
            assert ask is not None, record["data"]
            assert bid[0] < ask[0], record["data"]

    assert l2updates == 9719
    assert of_type(outputs, BookStale) == []
    assert of_type(outputs, Reconnect) == []
    changes = of_type(outputs, BookChange)
    resets = Counter(c.symbol for c in changes if c.is_reset)
    assert resets == {spec.symbol: 1 for spec in specs}
    deltas = [c for c in changes if not c.is_reset]
    assert len(deltas) == 9719  # every recorded l2update changes a level
    recorded_from = parse_iso_ns("2021-04-17T16:43:30Z")
    assert recorded_from is not None
    assert all(recorded_from <= (d.exchange_ts_ns or 0) < recorded_from + 60 * NS for d in deltas)

    trades = of_type(outputs, Trade)
    assert len(trades) == len(raw_trades) == 107
    inverted = {"buy": "sell", "sell": "buy"}
    assert all(t.aggressor == inverted[raw_trades[(t.symbol, t.trade_id)]] for t in trades)
    first = next(t for t in trades if t.trade_id == "881613")
    assert first.aggressor == "buy"  # last_match BAND-GBP: the maker sold
    assert first.exchange_ts_ns == int(datetime(2021, 4, 17, 16, 43, 30, tzinfo=UTC).timestamp()) * NS + 244_075_000

    sequence_checks = [v for v in of_type(outputs, Verified) if v.check == "trade_sequence"]
    assert [v for v in sequence_checks if not v.is_ok] == []
    assert len(sequence_checks) == 107 - 10  # every match after its product's last_match

    assert_books_match_decimal_model(protocol, specs, recording)


def assert_books_match_decimal_model(
    protocol: CoinbaseExchangeProtocol, specs: list[InstrumentSpec], recording: list[dict[str, Any]]
) -> None:
    """The final books equal a plain Decimal rebuild of the same messages."""
    model: dict[str, dict[str, dict[Decimal, Decimal]]] = defaultdict(lambda: {BID: {}, ASK: {}})
    for message in recv_messages(recording):
        if message["type"] == "snapshot":
            model[message["product_id"]] = {
                BID: {Decimal(p): Decimal(s) for p, s in message["bids"]},
                ASK: {Decimal(p): Decimal(s) for p, s in message["asks"]},
            }
        elif message["type"] == "l2update":
            for side, price, size in message["changes"]:
                levels = model[message["product_id"]][BID if side == "buy" else ASK]
                if Decimal(size) == 0:
                    levels.pop(Decimal(price), None)
                else:
                    levels[Decimal(price)] = Decimal(size)
    for spec in specs:
        book = protocol.book(spec.venue_symbol)
        for side in (BID, ASK):
            expected = {
                int(p.scaleb(spec.price_exp)): int(s.scaleb(spec.size_exp))
                for p, s in model[spec.venue_symbol][side].items()
            }
            assert dict(book.top(side)) == expected, (spec.symbol, side)


# --- Advanced Trade: synthetic frames ----------------------------------------------------------------


class AdvancedFeed:
    """Advanced Trade frames numbered like the venue: one `sequence_num` across every channel."""

    def __init__(self) -> None:
        self.seq = 0

    def frame(self, channel: str, events: list[dict[str, Any]], *, skip: int = 0) -> str:
        self.seq += skip
        text = json.dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": "2023-02-09T20:32:50.714964855Z",
                "sequence_num": self.seq,
                "events": events,
            }
        )
        self.seq += 1
        return text

    def subscriptions(self) -> str:
        return self.frame("subscriptions", [{"subscriptions": {"level2": ["BTC-USD", "ETH-USD"]}}])

    def heartbeat(self, *, skip: int = 0) -> str:
        event = {"current_time": "2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105", "heartbeat_counter": 1}
        return self.frame("heartbeats", [event], skip=skip)

    def book(
        self, kind: str, product: str, bids: Iterable[tuple[str, str]] = (), asks: Iterable[tuple[str, str]] = ()
    ) -> str:
        updates = [
            {"side": side, "event_time": "2023-02-09T20:32:50.714964855Z", "price_level": p, "new_quantity": q}
            for side, levels in (("bid", bids), ("offer", asks))
            for p, q in levels
        ]
        return self.frame("l2_data", [{"type": kind, "product_id": product, "updates": updates}])

    def snapshot(self, product: str, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]) -> str:
        return self.book("snapshot", product, bids, asks)

    def update(self, product: str, bids: Iterable[tuple[str, str]] = (), asks: Iterable[tuple[str, str]] = ()) -> str:
        return self.book("update", product, bids, asks)

    def trades(self, trades: list[dict[str, str]], kind: str = "update") -> str:
        return self.frame("market_trades", [{"type": kind, "trades": trades}])


def trade(
    trade_id: str, maker_side: str, price: str = "100.00", size: str = "0.5", product: str = "BTC-USD"
) -> dict[str, str]:
    return {
        "trade_id": trade_id,
        "product_id": product,
        "price": price,
        "size": size,
        "side": maker_side,
        "time": f"2023-02-09T20:19:35.{trade_id[-3:].rjust(9, '0')}Z",
    }


def advanced(*specs: InstrumentSpec) -> tuple[CoinbaseAdvancedProtocol, AdvancedFeed]:
    protocol = CoinbaseAdvancedProtocol(list(specs) or [BTC, ETH])
    protocol.on_open(0)
    return protocol, AdvancedFeed()


def feed(protocol: CoinbaseAdvancedProtocol | CoinbaseExchangeProtocol, *frames: str) -> list[Output]:
    outputs: list[Output] = []
    for now_ns, text in enumerate(frames, start=1):
        outputs += protocol.on_message(text, now_ns)
    return outputs


def test_advanced_open_subscribes_level2_heartbeats_and_market_trades() -> None:
    protocol = CoinbaseAdvancedProtocol([BTC, ETH])
    assert protocol.ws_path() == "/"
    frames = [json.loads(s.text) for s in of_type(protocol.on_open(0), Send)]
    assert frames == [
        {"type": "subscribe", "channel": "level2", "product_ids": ["BTC-USD", "ETH-USD"]},
        {"type": "subscribe", "channel": "heartbeats"},
        {"type": "subscribe", "channel": "market_trades", "product_ids": ["BTC-USD", "ETH-USD"]},
    ]


def test_advanced_snapshot_and_updates_interleaved_with_heartbeats_are_accepted() -> None:
    protocol, venue = advanced()
    outputs = feed(
        protocol,
        venue.subscriptions(),
        venue.heartbeat(),
        venue.snapshot("BTC-USD", [("100.00", "1.5"), ("99.50", "2")], [("100.50", "0.25"), ("101.00", "3")]),
        venue.heartbeat(),
        venue.update("BTC-USD", bids=[("100.00", "1.25"), ("99.00", "4")], asks=[("100.50", "0")]),
        venue.trades([trade("7", "SELL")]),
        venue.heartbeat(),
        venue.update("BTC-USD", asks=[("101.00", "0.00000000"), ("100.75", "1")]),
        venue.update("BTC-USD", bids=[("98.00", "0")]),  # deleting an absent level changes nothing
    )
    assert of_type(outputs, BookStale) == []
    assert of_type(outputs, Reconnect) == []
    reset, first, second = of_type(outputs, BookChange)
    assert reset.is_reset
    assert reset.venue_seq == 2
    assert reset.bids == ((10000, 150_000_000), (9950, 200_000_000))
    assert reset.asks == ((10050, 25_000_000), (10100, 300_000_000))
    assert reset.exchange_ts_ns == 1_675_974_770 * NS + 714_964_855
    assert (first.is_reset, first.venue_seq) == (False, 4)
    assert first.bids == ((10000, 125_000_000), (9900, 400_000_000))
    assert first.asks == ((10050, 0),)
    assert second.asks == ((10100, 0), (10075, 100_000_000))
    assert second.bids == ()
    book = protocol.book("BTC-USD")
    assert book.top(BID) == [(10000, 125_000_000), (9950, 200_000_000), (9900, 400_000_000)]
    assert book.top(ASK) == [(10075, 100_000_000)]


def test_advanced_sequence_gap_stales_every_synced_book_and_reconnects_once() -> None:
    protocol, venue = advanced()
    synced = feed(
        protocol,
        venue.subscriptions(),
        venue.snapshot("BTC-USD", [("100.00", "1")], [("101.00", "1")]),
        venue.snapshot("ETH-USD", [("10.00", "1")], [("11.00", "1")]),
    )
    assert len(of_type(synced, BookChange)) == 2
    broken = feed(protocol, venue.heartbeat(skip=1), venue.update("BTC-USD", bids=[("100.00", "2")]))
    assert sorted(s.symbol for s in of_type(broken, BookStale)) == ["BTC-USD", "ETH-USD"]
    assert all("sequence gap" in s.reason for s in of_type(broken, BookStale))
    assert len(of_type(broken, Reconnect)) == 1
    assert of_type(broken, BookChange) == []  # nothing after the gap is trusted
    assert protocol.book("BTC-USD").depth(BID) == 0
    assert protocol.on_close(10) == []  # already stale

    # A new connection restarts the numbering at the venue's first message.
    protocol.on_open(20)
    venue = AdvancedFeed()
    again = feed(protocol, venue.subscriptions(), venue.snapshot("BTC-USD", [("100.00", "1")], [("101.00", "1")]))
    assert [c.is_reset for c in of_type(again, BookChange)] == [True]


def test_advanced_repeated_sequence_num_is_a_gap_too() -> None:
    protocol, venue = advanced(BTC)
    feed(protocol, venue.subscriptions(), venue.snapshot("BTC-USD", [("100.00", "1")], [("101.00", "1")]))
    venue.seq -= 1
    outputs = feed(protocol, venue.heartbeat())
    assert [s.symbol for s in of_type(outputs, BookStale)] == ["BTC-USD"]
    assert len(of_type(outputs, Reconnect)) == 1


def test_advanced_market_trades_are_emitted_oldest_first_with_the_maker_side_inverted() -> None:
    protocol, venue = advanced()
    outputs = feed(
        protocol,
        venue.subscriptions(),
        venue.trades([trade("103", "buy"), trade("102", "Sell"), trade("101", "SELL", product="ETH-USD")], "snapshot"),
    )
    trades = of_type(outputs, Trade)
    assert [(t.trade_id, t.symbol, t.aggressor) for t in trades] == [
        ("101", "ETH-USD", "buy"),
        ("102", "BTC-USD", "buy"),
        ("103", "BTC-USD", "sell"),
    ]
    assert trades[0].price == 10000
    assert trades[0].qty == 50_000_000
    assert trades[0].exchange_ts_ns == 1_675_973_975 * NS + 101


def test_advanced_trades_replayed_after_a_resubscribe_are_not_emitted_twice() -> None:
    protocol, venue = advanced(BTC)
    first = feed(protocol, venue.trades([trade("102", "buy"), trade("101", "buy")], "snapshot"))
    protocol.on_close(5)
    protocol.on_open(6)
    venue = AdvancedFeed()
    second = feed(protocol, venue.trades([trade("103", "sell"), trade("102", "buy"), trade("101", "buy")], "snapshot"))
    assert [t.trade_id for t in of_type(first + second, Trade)] == ["101", "102", "103"]


def test_advanced_crossed_update_stales_the_book_and_reconnects() -> None:
    protocol, venue = advanced()
    feed(
        protocol,
        venue.snapshot("BTC-USD", [("100.00", "1")], [("101.00", "1")]),
        venue.snapshot("ETH-USD", [("10.00", "1")], [("11.00", "1")]),
    )
    outputs = feed(protocol, venue.update("BTC-USD", bids=[("101.00", "1")]))
    assert [(s.symbol, s.reason) for s in of_type(outputs, BookStale)] == [("BTC-USD", "crossed book")]
    assert len(of_type(outputs, Reconnect)) == 1
    # The other book stays live until the connection really closes; the stale one waits for a snapshot.
    later = feed(
        protocol, venue.update("ETH-USD", asks=[("10.50", "1")]), venue.update("BTC-USD", bids=[("99.00", "1")])
    )
    assert [(c.symbol, c.asks) for c in of_type(later, BookChange)] == [("ETH-USD", ((1050, 100_000_000),))]
    assert [s.symbol for s in of_type(protocol.on_close(9), BookStale)] == ["ETH-USD"]


def test_advanced_level_finer_than_the_instrument_stales_and_reconnects() -> None:
    protocol, venue = advanced(BTC)
    feed(protocol, venue.snapshot("BTC-USD", [("100.00", "1")], [("101.00", "1")]))
    outputs = feed(protocol, venue.update("BTC-USD", bids=[("100.001", "1")]))
    (stale,) = of_type(outputs, BookStale)
    assert "bad level" in stale.reason
    assert len(of_type(outputs, Reconnect)) == 1


def test_advanced_venue_error_reconnects_with_its_message() -> None:
    protocol, _ = advanced(BTC)
    outputs = protocol.on_message('{"type":"error","message":"failure to subscribe"}', 1)
    assert outputs == [Reconnect("venue error: failure to subscribe")]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(["", "0", "1.5", "-1", "bid", "offer", "buy", "BTC-USD"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "channel",
                    "type",
                    "events",
                    "updates",
                    "product_id",
                    "side",
                    "price_level",
                    "new_quantity",
                    "sequence_num",
                    "trades",
                    "trade_id",
                    "price",
                    "size",
                    "changes",
                    "bids",
                    "asks",
                    "time",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(garbage=st.lists(JSON, max_size=4), seq_from=st.integers(0, 3))
def test_malformed_frames_never_raise(garbage: list[Any], seq_from: int) -> None:
    for protocol in (CoinbaseAdvancedProtocol([BTC]), CoinbaseExchangeProtocol([BTC])):
        protocol.on_open(0)
        venue = AdvancedFeed()
        protocol.on_message(venue.snapshot("BTC-USD", [("100.00", "1")], [("101.00", "1")]), 1)
        protocol.on_message(
            '{"type":"snapshot","product_id":"BTC-USD","bids":[["100.00","1"]],"asks":[["101.00","1"]]}', 1
        )
        for i, value in enumerate(garbage):
            if isinstance(value, dict) and "sequence_num" in value:
                value["sequence_num"] = seq_from + i
            for text in (json.dumps(value), json.dumps(value)[:-1]):
                outputs = protocol.on_message(text, 2 + i)
                assert isinstance(outputs, list)


# --- Exchange: synthetic frames ----------------------------------------------------------------------


def exchange_snapshot(product: str = "BTC-USD") -> str:
    return json.dumps({"type": "snapshot", "product_id": product, "bids": [["100.00", "1"]], "asks": [["101.00", "1"]]})


def l2update(*changes: tuple[str, str, str], product: str = "BTC-USD") -> str:
    return json.dumps(
        {
            "type": "l2update",
            "product_id": product,
            "changes": [list(c) for c in changes],
            "time": "2021-04-17T16:43:37.075687Z",
        }
    )


def match(trade_id: int, maker_side: str, kind: str = "match") -> str:
    return json.dumps(
        {
            "type": kind,
            "trade_id": trade_id,
            "side": maker_side,
            "size": "0.1",
            "price": "100.50",
            "product_id": "BTC-USD",
            "sequence": 5,
            "time": "2021-04-17T16:43:37.089723Z",
        }
    )


def test_exchange_subscribes_to_level2_batch_matches_and_heartbeat_by_default() -> None:
    (subscribe,) = CoinbaseExchangeProtocol([BTC, ETH]).on_open(0)
    assert isinstance(subscribe, Send)
    assert json.loads(subscribe.text) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD", "ETH-USD"],
        "channels": ["level2_batch", "matches", "heartbeat"],
    }


def test_exchange_updates_before_the_snapshot_are_ignored_then_applied() -> None:
    protocol = CoinbaseExchangeProtocol([BTC])
    protocol.on_open(0)
    outputs = feed(protocol, l2update(("buy", "99.00", "1")), exchange_snapshot(), l2update(("buy", "99.50", "2")))
    reset, delta = of_type(outputs, BookChange)
    assert reset.is_reset
    assert reset.bids == ((10000, 100_000_000),)
    assert reset.exchange_ts_ns is None
    assert delta.bids == ((9950, 200_000_000),)
    assert delta.exchange_ts_ns == 1_618_677_817 * NS + 75_687_000


def test_exchange_crossed_update_stales_the_book_and_reconnects() -> None:
    protocol = CoinbaseExchangeProtocol([BTC])
    protocol.on_open(0)
    outputs = feed(protocol, exchange_snapshot(), l2update(("sell", "99.00", "1")))
    assert [s.reason for s in of_type(outputs, BookStale)] == ["crossed book"]
    assert len(of_type(outputs, Reconnect)) == 1


def test_exchange_trade_id_gap_is_reported_but_leaves_the_book_alone() -> None:
    protocol = CoinbaseExchangeProtocol([BTC])
    protocol.on_open(0)
    outputs = feed(protocol, exchange_snapshot(), match(10, "buy", "last_match"), match(11, "sell"), match(14, "buy"))
    assert [t.aggressor for t in of_type(outputs, Trade)] == ["sell", "buy", "sell"]
    checks = [(v.is_ok, v.detail) for v in of_type(outputs, Verified)]
    assert checks == [(True, ""), (False, "trade_id 14 after 11: 2 missing")]
    assert of_type(outputs, BookStale) == []
    assert of_type(outputs, Reconnect) == []


def test_exchange_last_match_replayed_on_resubscribe_is_dropped() -> None:
    protocol = CoinbaseExchangeProtocol([BTC])
    protocol.on_open(0)
    first = feed(protocol, match(10, "buy", "last_match"), match(11, "sell"))
    protocol.on_close(3)
    protocol.on_open(4)
    second = feed(protocol, match(11, "sell", "last_match"), match(15, "sell"))
    assert [t.trade_id for t in of_type(first + second, Trade)] == ["10", "11", "15"]
    assert all(v.is_ok for v in of_type(second, Verified))  # trades missed while disconnected are not a feed gap


def test_exchange_error_reconnects_with_the_venue_message() -> None:
    protocol = CoinbaseExchangeProtocol([BTC])
    error = '{"type":"error","message":"Failed to subscribe","reason":"level2 requires authentication"}'
    assert protocol.on_message(error, 1) == [
        Reconnect("venue error: Failed to subscribe: level2 requires authentication")
    ]


def test_exchange_unparseable_frame_stales_every_book() -> None:
    protocol = CoinbaseExchangeProtocol([BTC, ETH])
    protocol.on_open(0)
    feed(protocol, exchange_snapshot(), exchange_snapshot("ETH-USD"))
    outputs = protocol.on_message('{"type":"l2upd', 3)
    assert sorted(s.symbol for s in of_type(outputs, BookStale)) == ["BTC-USD", "ETH-USD"]
    assert len(of_type(outputs, Reconnect)) == 1


# --- Hypothesis: contiguous, uncrossed updates keep the book exact -----------------------------------

PRICE_EXP, SIZE_EXP = 2, 3
SPEC = InstrumentSpec("BTC-USD", "BTC-USD", PRICE_EXP, SIZE_EXP)


def price_text(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}"


@st.composite
def level(draw: st.DrawFn, side: str) -> tuple[str, int, str]:
    """(side, price ticks, quantity text); bids below 1.00, asks from 1.00, so the book never crosses."""
    ticks = draw(st.integers(1, 99) if side == BID else st.integers(100, 199))
    qty = draw(st.integers(0, 3000))
    padding = "0" * draw(st.integers(0, 3))  # trailing zeros are the same quantity
    text = str(qty // 1000) if qty % 1000 == 0 and not padding else f"{qty // 1000}.{qty % 1000:03d}{padding}"
    return side, ticks, text


def levels(max_size: int) -> st.SearchStrategy[list[tuple[str, int, str]]]:
    return st.lists(level(BID) | level(ASK), max_size=max_size)


@settings(max_examples=200, deadline=None)
@given(
    initial=levels(20),
    messages=st.lists(st.none() | levels(6), max_size=30),  # None: a heartbeat between updates
)
def test_contiguous_uncrossed_updates_never_go_stale_and_match_a_dict_model(
    initial: list[tuple[str, int, str]], messages: list[list[tuple[str, int, str]] | None]
) -> None:
    protocol, venue = advanced(SPEC)
    model: dict[tuple[str, int], int] = {}
    mirror: dict[tuple[str, int], int] = {}  # rebuilt from the emitted changes alone

    def to_model(batch: list[tuple[str, int, str]]) -> None:
        for side, ticks, text in batch:
            whole, _, frac = text.partition(".")
            qty = int(whole) * 1000 + int((frac or "0")[:3].ljust(3, "0"))
            if qty:
                model[(side, ticks)] = qty
            else:
                model.pop((side, ticks), None)

    def split(batch: list[tuple[str, int, str]]) -> dict[str, list[tuple[str, str]]]:
        return {
            "bids": [(price_text(t), q) for s, t, q in batch if s == BID],
            "asks": [(price_text(t), q) for s, t, q in batch if s == ASK],
        }

    frames = [venue.subscriptions(), venue.snapshot("BTC-USD", **split(initial))]
    to_model(initial)
    outputs = feed(protocol, *frames)
    for batch in messages:
        outputs += feed(protocol, venue.heartbeat() if batch is None else venue.update("BTC-USD", **split(batch)))
        if batch is not None:
            to_model(batch)

    assert of_type(outputs, BookStale) == []
    assert of_type(outputs, Reconnect) == []
    for change in of_type(outputs, BookChange):
        if change.is_reset:
            mirror.clear()
        for side, side_levels in ((BID, change.bids), (ASK, change.asks)):
            for price, qty in side_levels:
                if qty:
                    mirror[(side, price)] = qty
                else:
                    mirror.pop((side, price), None)
    book: OrderBook = protocol.book("BTC-USD")
    actual = {(side, p): q for side in (BID, ASK) for p, q in book.top(side)}
    assert actual == model == mirror
    assert not book.is_crossed()
