"""OKX, Kraken and Coinbase conformance over loopback: replay venue → real connector shell → publisher.

All 290 OKX and 4,269 Kraken checksums verify; Coinbase books never cross; every published sequence is
gap-free; a corrupted level fails its checksum, the book resyncs, and it ends equal to a book rebuilt
independently from the clean recording; OKX's synthetic seqId with keep-alive and reset is accepted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import orjson
import pytest

from apps.orderbook.domain.book import ASK, BID, OrderBook
from apps.orderbook.domain.events import SNAPSHOT, STALE, InstrumentSpec
from apps.orderbook.domain.protocol import VenueProtocol
from apps.orderbook.domain.recording import parse_recording
from apps.orderbook.domain.replica import BookReplica
from apps.orderbook.domain.venues.coinbase import CoinbaseExchangeProtocol
from apps.orderbook.domain.venues.kraken import KrakenV1Protocol
from apps.orderbook.domain.venues.okx import OKXProtocol
from apps.orderbook.tests.loopback import LoopbackRun, replay
from conftest import recording

SEED = importlib.import_module("apps.orderbook.migrations.0002_seed_venues_and_instruments")
OKX = "okx_2022-05-13.replay.jsonl"
KRAKEN = "kraken_v1_2021-04-17.replay.jsonl"
COINBASE = "coinbase_exchange_2021-04-17.replay.jsonl"


def specs(venue: str) -> list[InstrumentSpec]:
    return [InstrumentSpec(ours, theirs, pe, se) for v, theirs, ours, _, _, pe, se in SEED.LISTINGS if v == venue]


def kraken_specs_by_conn() -> dict[str, list[InstrumentSpec]]:
    """Each recorded Kraken connection subscribed its own pairs."""
    rec = parse_recording(recording(KRAKEN).read_text().splitlines())
    by_name = {s.venue_symbol: s for s in specs("kraken")}
    out: dict[str, list[InstrumentSpec]] = {}
    for conn, connection in rec.connections.items():
        pairs = {p for send in connection.sends for p in orjson.loads(send.text).get("pair", [])}
        out[conn] = [by_name[p] for p in sorted(pairs) if p in by_name]
    return out


def assert_gap_free(result: LoopbackRun) -> None:
    for book, events in result.books().items():
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), book


def published(result: LoopbackRun, book: str) -> BookReplica:
    replica = BookReplica(book, 0, 0)
    for event in result.books()[book]:
        replica.apply(event)
    return replica


def clean_okx_book(spec: InstrumentSpec) -> OrderBook:
    """BTC-USDT rebuilt from the recording's own frames, independently of the connector."""
    book = OrderBook(spec.price_exp, spec.size_exp)
    for frame in recording(OKX).read_text().splitlines():
        record = orjson.loads(frame)
        if record["t"] != "recv" or '"books"' not in record["data"]:
            continue
        message = orjson.loads(record["data"])
        if message.get("arg", {}).get("instId") != spec.venue_symbol or "data" not in message:
            continue
        if message["action"] == "snapshot":
            book.clear()
        for side, key in ((BID, "bids"), (ASK, "asks")):
            for level in message["data"][0][key]:
                book.apply(side, level[0], level[1])
    return book


def run_okx(faults: str = "") -> LoopbackRun:
    make: Callable[[str, list[InstrumentSpec]], VenueProtocol] = lambda conn, s: OKXProtocol(s)  # noqa: E731
    return replay(recording(OKX), "okx", specs("okx"), make, faults=faults)


def test_okx_all_290_checksums_verify_and_books_are_gap_free() -> None:
    result = run_okx()
    assert result.checks("checksum", ok=True) == 290
    assert result.checks("checksum", ok=False) == 0
    assert_gap_free(result)
    btc = next(s for s in specs("okx") if s.symbol == "BTC-USDT")
    replica = published(result, "okx:BTC-USDT")
    assert replica.top(BID) == clean_okx_book(btc).top(BID)
    assert replica.top(ASK) == clean_okx_book(btc).top(ASK)


def test_okx_corrupted_level_fails_the_checksum_then_resyncs_to_the_true_book() -> None:
    result = run_okx("corrupt:books.update:BTC-USDT:20")
    assert result.checks("checksum", ok=False) == 1
    kinds = [e.kind for e in result.books()["okx:BTC-USDT"]]
    stale_at = kinds.index(STALE)
    assert kinds[stale_at + 1] == SNAPSHOT
    assert result.venue.stats.snapshots_synthesised >= 1
    assert_gap_free(result)
    btc = next(s for s in specs("okx") if s.symbol == "BTC-USDT")
    replica = published(result, "okx:BTC-USDT")
    assert not replica.is_stale
    assert replica.top(BID) == clean_okx_book(btc).top(BID)
    assert replica.top(ASK) == clean_okx_book(btc).top(ASK)


def test_okx_synthetic_seq_ids_with_keepalive_and_reset_are_accepted() -> None:
    result = run_okx("okxseq:BTC-USDT:10:30")
    assert not [e for events in result.books().values() for e in events if e.kind == STALE]
    assert_gap_free(result)
    btc = next(s for s in specs("okx") if s.symbol == "BTC-USDT")
    assert published(result, "okx:BTC-USDT").top(BID) == clean_okx_book(btc).top(BID)


def test_okx_seq_gap_resyncs() -> None:
    result = run_okx("okxseq,drop:books.update:BTC-USDT:15")
    kinds = [e.kind for e in result.books()["okx:BTC-USDT"]]
    assert STALE in kinds
    assert kinds[kinds.index(STALE) + 1] == SNAPSHOT
    assert_gap_free(result)
    btc = next(s for s in specs("okx") if s.symbol == "BTC-USDT")
    assert published(result, "okx:BTC-USDT").top(BID) == clean_okx_book(btc).top(BID)


def run_kraken(faults: str = "") -> tuple[LoopbackRun, dict[str, list[InstrumentSpec]]]:
    by_conn = kraken_specs_by_conn()
    all_specs = [s for group in by_conn.values() for s in group]
    result = replay(
        recording(KRAKEN),
        "kraken",
        all_specs,
        lambda conn, s: KrakenV1Protocol(by_conn[conn], depth=1000),
        faults=faults,
        timeout_s=60,
    )
    return result, by_conn


def test_kraken_all_4269_checksums_verify_and_books_are_gap_free() -> None:
    result, _ = run_kraken()
    assert result.checks("checksum", ok=True) == 4269
    assert result.checks("checksum", ok=False) == 0
    assert not [e for events in result.books().values() for e in events if e.kind == STALE]
    assert_gap_free(result)


def test_kraken_corrupted_level_fails_the_checksum_then_resyncs() -> None:
    clean, _ = run_kraken()
    result, _ = run_kraken("corrupt:book:XMR/USD:100")
    assert result.checks("checksum", ok=False) == 1
    kinds = [e.kind for e in result.books()["kraken:XMR-USD"]]
    assert kinds[kinds.index(STALE) + 1] == SNAPSHOT
    assert_gap_free(result)
    after, before = published(result, "kraken:XMR-USD"), published(clean, "kraken:XMR-USD")
    assert not after.is_stale
    assert (after.top(BID), after.top(ASK)) == (before.top(BID), before.top(ASK))


def test_coinbase_books_never_cross_and_are_gap_free() -> None:
    crossed: list[str] = []

    def make(conn: str, s: list[InstrumentSpec]) -> VenueProtocol:
        return CoinbaseExchangeProtocol(s, channel="level2")

    result = replay(recording(COINBASE), "coinbase", specs_coinbase(), make, timeout_s=60)
    for book, events in result.books().items():
        replica = BookReplica(book, 0, 0)
        for event in events:
            replica.apply(event)
            bid, ask = replica.top(BID, 1), replica.top(ASK, 1)
            if bid and ask and bid[0][0] >= ask[0][0]:
                crossed.append(f"{book}@{event.seq}")
    assert not crossed
    assert not [e for events in result.books().values() for e in events if e.kind == STALE]
    assert_gap_free(result)
    assert len([b for b in result.books() if b.startswith("coinbase:")]) == 10


def specs_coinbase() -> list[InstrumentSpec]:
    return [s for s in specs("coinbase") if s.symbol != "BTC-USD"]


@pytest.mark.parametrize("kill_after", [500])
def test_coinbase_killed_connection_reconnects_and_resyncs(kill_after: int) -> None:
    def make(conn: str, s: list[InstrumentSpec]) -> VenueProtocol:
        return CoinbaseExchangeProtocol(s, channel="level2")

    result = replay(recording(COINBASE), "coinbase", specs_coinbase(), make, faults=f"kill:{kill_after}", timeout_s=60)
    [connection] = result.connections.values()
    assert connection.connects == 2
    events = result.books()["coinbase:SKL-USD"]
    kinds = [e.kind for e in events]
    assert kinds.count(SNAPSHOT) == 2
    assert kinds[kinds.index(STALE) + 1] == SNAPSHOT
    assert_gap_free(result)
