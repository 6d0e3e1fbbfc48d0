"""Connector → publisher → bus → hub → REST, on the real Binance recording, embedded and on Redis."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.events import BookEvent, InstrumentSpec
from apps.orderbook.domain.fixedpoint import from_units
from apps.orderbook.domain.protocol import Output
from apps.orderbook.domain.replica import BookReplica
from apps.orderbook.domain.venues.binance import BinanceProtocol
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.services.publisher import FeedPublisher, Precision
from apps.orderbook.tests.feeding import drive, load, wait_for_hub
from conftest import Persona, recording

pytestmark = pytest.mark.django_db
SYMBOLS = {"NKNUSDT": "NKN-USDT", "LRCBTC": "LRC-BTC", "BLZETH": "BLZ-ETH", "RUNEEUR": "RUNE-EUR"}


def run_binance_recording() -> tuple[BinanceProtocol, FeedPublisher, list[BookEvent]]:
    rec = load(recording("binance_spot_2021-10-12.replay.jsonl"))
    protocol = BinanceProtocol([InstrumentSpec(ours, theirs, 8, 8) for theirs, ours in SYMBOLS.items()])
    listings = {("binance", ours): Precision(8, 8) for ours in SYMBOLS.values()}
    publisher = FeedPublisher(get_bus(), listings, {s: Precision(8, 8) for s in SYMBOLS.values()}, time.time_ns)
    get_hub()
    events: list[BookEvent] = []

    def sink(outputs: list[Output]) -> None:
        events.extend(publisher.handle(outputs))

    drive(protocol, rec, sink)
    return protocol, publisher, events


@pytest.fixture(params=["embedded", "redis"])
def market(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("market_redis")
    return str(request.param)


def test_every_published_book_is_gap_free_and_starts_with_a_snapshot(market: str) -> None:
    _, _, events = run_binance_recording()
    by_book: dict[str, list[BookEvent]] = defaultdict(list)
    for event in events:
        by_book[event.book].append(event)
    assert set(by_book) == {f"{v}:{s}" for s in SYMBOLS.values() for v in ("binance", "consolidated")}
    for book, seq_events in by_book.items():
        assert [e.seq for e in seq_events] == list(range(1, len(seq_events) + 1)), book
        assert seq_events[0].kind == "snapshot"


def test_hub_replica_equals_the_connector_book(market: str) -> None:
    protocol, _, events = run_binance_recording()
    for theirs, ours in SYMBOLS.items():
        last = max(e.seq for e in events if e.book == f"binance:{ours}")
        wait_for_hub(f"binance:{ours}", last)
        view = get_hub().view(f"binance:{ours}", None)
        assert view is not None
        assert view.bids == protocol.book(theirs).top(BID)
        assert view.asks == protocol.book(theirs).top(ASK)
        consolidated = get_hub().view(f"consolidated:{ours}", None)
        assert consolidated is not None
        assert (consolidated.bids, consolidated.asks) == (view.bids, view.asks)  # one venue: the same book


def test_history_rebuilds_the_same_book_as_the_live_events(market: str) -> None:
    _, _, events = run_binance_recording()
    book = "binance:NKN-USDT"
    live = BookReplica(book, 8, 8)
    for event in events:
        if event.book == book:
            live.apply(event)
    rebuilt = BookReplica(book, 8, 8)
    for event in get_bus().history(book, 0, 10_000):
        rebuilt.apply(event)
    assert rebuilt.seq == live.seq
    assert rebuilt.top(BID) == live.top(BID)
    assert rebuilt.top(ASK) == live.top(ASK)


def test_late_hub_catches_up_from_checkpoint_and_history(market_redis: str) -> None:
    from apps.orderbook.services.hub import MarketDataHub

    protocol, publisher, _ = run_binance_recording()
    publisher.flush_checkpoints()
    late = MarketDataHub(get_bus())
    late.bootstrap()
    view = late.view("binance:NKN-USDT", None)
    assert view is not None
    assert view.bids == protocol.book("NKNUSDT").top(BID)
    assert not view.is_stale


def snapshot_json(protocol: BinanceProtocol, symbol: str, depth: int) -> dict[str, Any]:
    book = protocol.book(symbol)
    return {
        "bids": [[from_units(p, 8), from_units(q, 8)] for p, q in book.top(BID, depth)],
        "asks": [[from_units(p, 8), from_units(q, 8)] for p, q in book.top(ASK, depth)],
    }


def test_rest_snapshot_serves_the_book_capped_by_tier(alice: Persona, bob: Persona) -> None:
    protocol, _, _ = run_binance_recording()
    body = alice.client().get("/api/hft/orderbook/NKN/USDT/snapshot", {"venue": "binance", "depth": 5}).json()
    assert body["pair"] == "NKN-USDT"
    assert body["venue"] == "binance"
    assert {"bids": body["bids"], "asks": body["asks"]} == snapshot_json(protocol, "NKNUSDT", 5)
    assert body["stale"] is False
    assert body["sequence"] > 1
    assert isinstance(body["timestamp"], int)
    capped = bob.client().get("/api/hft/orderbook/NKN-USDT/snapshot", {"depth": 500}).json()
    assert capped["depth"] == 20
    assert capped["depth_capped"] is True
    assert len(capped["bids"]) == 20
    assert capped["venue"] == "consolidated"


def test_rest_deltas_come_in_order_from_since_plus_one(alice: Persona) -> None:
    _, _, events = run_binance_recording()
    client = alice.client()
    first = client.get("/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": 0, "limit": 10, "venue": "binance"})
    body = first.json()
    assert [d["sequence"] for d in body["deltas"]] == list(range(1, 11))
    assert body["deltas"][0]["type"] == "snapshot"
    assert body["next_sequence"] == 10
    assert body["has_more"] is True
    rest = client.get(
        "/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": 10, "limit": 1000, "venue": "binance"}
    ).json()
    latest = max(e.seq for e in events if e.book == "binance:NKN-USDT")
    assert [d["sequence"] for d in rest["deltas"]] == list(range(11, latest + 1))
    assert rest["has_more"] is False
    # Every level is a pair of decimal strings, quantity "0" for a removed level.
    for delta in rest["deltas"]:
        for price, qty in delta["bids"] + delta["asks"]:
            assert isinstance(price, str)
            assert isinstance(qty, str)


def test_deltas_older_than_the_tier_history_are_gone(carol: Persona) -> None:
    _, _, events = run_binance_recording()
    latest = max(e.seq for e in events if e.book == "binance:NKN-USDT")
    assert latest > 100  # carol's basic tier sees 100 back
    client = carol.client()
    gone = client.get("/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": latest - 101, "venue": "binance"})
    assert gone.status_code == 410
    assert gone.json()["code"] == "history_too_old"
    ok = client.get("/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": latest - 100, "venue": "binance"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/hft/orderbook/NOPE-USD/snapshot", {}, 404, "unknown_pair"),
        ("/api/hft/orderbook/NKN-USDT/snapshot", {"venue": "kraken"}, 404, "unknown_venue"),
        ("/api/hft/orderbook/NKN-USDT/snapshot", {"depth": 0}, 400, "invalid_request"),
        ("/api/hft/orderbook/NKN-USDT/snapshot", {"depth": "ten"}, 400, "invalid_request"),
        ("/api/hft/orderbook/NKN-USDT/deltas", {}, 400, "invalid_request"),
        ("/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": -1}, 400, "invalid_request"),
        ("/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": 0, "limit": 0}, 400, "invalid_request"),
        ("/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": 10**9}, 400, "since_sequence_ahead"),
        ("/api/hft/orderbook/BTC-USDT/snapshot", {"venue": "sim"}, 503, "book_not_available"),
    ],
)
def test_bad_requests_get_coded_errors(
    alice: Persona, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    run_binance_recording()
    response = alice.client().get(path, params)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def test_free_tier_has_snapshots_but_not_delta_history(bob: Persona) -> None:
    run_binance_recording()
    assert bob.client().get("/api/hft/orderbook/NKN-USDT/snapshot").status_code == 200
    refused = bob.client().get("/api/hft/orderbook/NKN-USDT/deltas", {"since_sequence": 0})
    assert refused.status_code == 403
    assert refused.json()["detail"]["available_from"] == "basic"


def test_instruments_list_ids_precision_and_listings(alice: Persona) -> None:
    body = alice.client().get("/api/hft/instruments").json()
    by_symbol = {i["symbol"]: i for i in body}
    assert by_symbol["BTC-USDT"]["price_decimals"] == 8
    assert {v["venue"] for v in by_symbol["BTC-USDT"]["venues"]} >= {"sim", "binance", "okx"}
    assert by_symbol["BTC-USD"]["venues"][0]["venue_symbol"] in ("BTC-USD", "XBT/USD")
    assert all(isinstance(i["id"], int) for i in body)


def test_rest_shows_stale_while_a_book_resyncs_and_consolidated_without_it(alice: Persona) -> None:
    from apps.orderbook.domain.events import BookStale

    _, publisher, _ = run_binance_recording()
    publisher.handle([BookStale("binance", "NKN-USDT", "gap: U=5 after u=3", time.time_ns())])
    client = alice.client()
    venue = client.get("/api/hft/orderbook/NKN-USDT/snapshot", {"venue": "binance"}).json()
    assert venue["stale"] is True
    consolidated = client.get("/api/hft/orderbook/NKN-USDT/snapshot").json()
    assert consolidated["stale"] is True  # its only venue is out: last known levels, flagged


def test_consolidated_snapshot_breaks_sizes_down_by_venue(alice: Persona) -> None:
    run_binance_recording()
    body = alice.client().get("/api/hft/orderbook/NKN-USDT/snapshot", {"depth": 3, "breakdown": "true"}).json()
    assert body["venues"]["binance"]["bids"] == body["bids"]
    assert body["venues"]["binance"]["asks"] == body["asks"]
