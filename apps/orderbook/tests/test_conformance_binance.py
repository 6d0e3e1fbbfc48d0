"""Binance conformance over loopback: replay venue → real connector shell → publisher → bus.

The top of book equals every `@bookTicker` whose `u` matches the book, on both Binance recordings; each
published sequence is gap-free; faults (a dropped frame, a duplicate, a killed connection) cause exactly
the resync they should, and afterwards the published book equals an independently rebuilt one.
"""

from __future__ import annotations

import orjson
import pytest

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, InstrumentSpec
from apps.orderbook.domain.fixedpoint import to_units
from apps.orderbook.domain.replay_depth import live_binance_depth
from apps.orderbook.domain.replica import BookReplica
from apps.orderbook.domain.venues.binance import BinanceProtocol
from apps.orderbook.tests.loopback import LoopbackRun, replay
from conftest import recording

SPOT = {"NKNUSDT": "NKN-USDT", "LRCBTC": "LRC-BTC", "BLZETH": "BLZ-ETH", "RUNEEUR": "RUNE-EUR"}
US = {"OMGBUSD": "OMG-BUSD", "COMPUSDT": "COMP-USDT", "ZRXUSDT": "ZRX-USDT", "CRVUSDT": "CRV-USDT"}


def specs(symbols: dict[str, str]) -> list[InstrumentSpec]:
    return [InstrumentSpec(ours, theirs, 8, 8) for theirs, ours in symbols.items()]


def run(file: str, symbols: dict[str, str], faults: str = "", **kwargs: object) -> LoopbackRun:
    return replay(
        recording(file),
        "binance",
        specs(symbols),
        lambda conn, s: BinanceProtocol(s),
        faults=faults,
        **kwargs,
    )


def assert_gap_free(result: LoopbackRun) -> None:
    for book, events in result.books().items():
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), book


def rebuilt(result: LoopbackRun, book: str) -> BookReplica:
    """The book as a client following the published events would hold it."""
    replica = BookReplica(book, 8, 8)
    for event in result.books()[book]:
        replica.apply(event)
    return replica


def assert_published_equals_connector(result: LoopbackRun, symbols: dict[str, str]) -> None:
    """The published book equals the connector's, and a book rebuilt independently from the clean recording."""
    [protocol] = result.protocols.values()
    assert isinstance(protocol, BinanceProtocol)
    recorded = result.venue.recording
    [conn] = recorded.connections.values()
    for theirs, ours in symbols.items():
        replica = rebuilt(result, f"binance:{ours}")
        assert not replica.is_stale
        assert replica.top(BID) == protocol.book(theirs).top(BID)
        assert replica.top(ASK) == protocol.book(theirs).top(ASK)
        [snapshot] = recorded.http[f"/api/v3/depth?symbol={theirs}&limit=1000"]
        truth = orjson.loads(live_binance_depth(snapshot.body, conn.frames, len(conn.frames) - 1, theirs, 5000))
        assert replica.top(BID) == [(to_units(p, 8), to_units(q, 8)) for p, q in truth["bids"]]
        assert replica.top(ASK) == [(to_units(p, 8), to_units(q, 8)) for p, q in truth["asks"]]


@pytest.mark.parametrize(
    ("file", "symbols", "tickers"),
    [("binance_spot_2021-10-12.replay.jsonl", SPOT, 26), ("binance_us_2021-10-12.replay.jsonl", US, 56)],
)
def test_top_of_book_equals_every_matching_book_ticker(file: str, symbols: dict[str, str], tickers: int) -> None:
    # At ten times the recorded pace the REST snapshot lands mid-stream, as it did when recorded.
    result = run(file, symbols, speed=10, settle=lambda r: r.checks("book_ticker", ok=True) >= tickers)
    assert result.checks("book_ticker", ok=True) == tickers
    assert result.checks("book_ticker", ok=False) == 0
    assert_gap_free(result)
    assert not [e for books in result.books().values() for e in books if e.kind == STALE]
    busiest = next(iter(symbols.values()))
    assert sum(e.kind == DELTA for e in result.books()[f"binance:{busiest}"]) > 100
    assert_published_equals_connector(result, symbols)


def test_dropped_depth_frame_resyncs_and_publishes_a_reset() -> None:
    result = run("binance_spot_2021-10-12.replay.jsonl", SPOT, "drop:depthUpdate:NKNUSDT:40", speed=10)
    events = result.books()["binance:NKN-USDT"]
    kinds = [e.kind for e in events]
    stale_at = kinds.index(STALE)
    assert "gap" in events[stale_at].reason
    assert kinds[stale_at + 1] == SNAPSHOT  # the reset, with the very next sequence
    assert all(k == DELTA for k in kinds[1:stale_at])
    assert result.venue.stats.http_served["/api/v3/depth?symbol=NKNUSDT&limit=1000"] >= 2
    assert_gap_free(result)
    assert_published_equals_connector(result, SPOT)


def test_duplicate_and_late_frames_are_ignored() -> None:
    clean = run("binance_spot_2021-10-12.replay.jsonl", SPOT)
    faulty = run(
        "binance_spot_2021-10-12.replay.jsonl", SPOT, "dup:depthUpdate:NKNUSDT:30,dup:depthUpdate:NKNUSDT:50:5"
    )
    assert not [e for books in faulty.books().values() for e in books if e.kind == STALE]
    book = "binance:NKN-USDT"
    assert rebuilt(faulty, book).top(BID) == rebuilt(clean, book).top(BID)
    assert rebuilt(faulty, book).top(ASK) == rebuilt(clean, book).top(ASK)
    assert_gap_free(faulty)


def test_killed_connection_reconnects_and_resyncs() -> None:
    result = run("binance_spot_2021-10-12.replay.jsonl", SPOT, "kill:60", speed=10, timeout_s=40)
    [connection] = result.connections.values()
    assert connection.connects >= 2
    events = result.books()["binance:NKN-USDT"]
    kinds = [e.kind for e in events]
    assert STALE in kinds
    assert events[kinds.index(STALE)].reason == "disconnected"
    assert SNAPSHOT in kinds[kinds.index(STALE) :]
    assert_gap_free(result)
    # A replay restarts the conn from its first frame; NKNUSDT is the symbol with diffs after the kill.
    assert_published_equals_connector(result, {"NKNUSDT": "NKN-USDT"})
