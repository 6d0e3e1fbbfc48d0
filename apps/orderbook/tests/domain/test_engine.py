"""The book engine, fixed-point numbers, checksums, replicas and the consolidated book: exact, by property."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.orderbook.domain.book import ASK, BID, OrderBook
from apps.orderbook.domain.checksum import kraken_checksum, okx_check_string, okx_checksum
from apps.orderbook.domain.consolidated import ConsolidatedBook
from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, BookEvent
from apps.orderbook.domain.fixedpoint import PrecisionError, from_units, rescale, to_units
from apps.orderbook.domain.replica import BookReplica, CheckpointReplica, SequenceGap

VECTORS = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "venues" / "checksum_test_vectors.json"

prices = st.integers(min_value=1, max_value=10_000).map(lambda t: f"{t // 100}.{t % 100:02d}")
qtys = st.one_of(st.just("0"), st.integers(min_value=1, max_value=10**6).map(lambda u: f"{u // 1000}.{u % 1000:03d}"))
updates = st.lists(st.tuples(st.sampled_from([BID, ASK]), prices, qtys), max_size=200)


@pytest.mark.parametrize(
    ("text", "exp", "units"),
    [("123.4500", 6, 123450000), ("0.00000001", 8, 1), ("5", 2, 500), ("1.50", 1, 15), ("1e-5", 8, 1000)],
)
def test_decimal_text_converts_exactly(text: str, exp: int, units: int) -> None:
    assert to_units(text, exp) == units


@pytest.mark.parametrize("text", ["", ".", "-", "-5", " 1", "1_000", "1.2.3", "abc", "1.23", "٣", "nan", "inf"])
def test_bad_or_too_precise_text_is_refused(text: str) -> None:
    with pytest.raises(PrecisionError):
        to_units(text, 1)


quantity_texts = st.one_of(
    st.text(alphabet="0123456789.", max_size=12),
    st.text(alphabet="019.-+_ e\u0663", max_size=12),
    st.integers(min_value=0, max_value=10**12).map(lambda u: f"{u // 10**8}.{u % 10**8:08d}"),
)


@settings(max_examples=500, deadline=None)
@given(quantity_texts, st.integers(min_value=0, max_value=8))
def test_the_books_own_quantity_parse_agrees_with_to_units(text: str, exp: int) -> None:
    """The book parses quantity text inline (every level of every message): same units as `to_units`, or the
    same refusal."""
    book = OrderBook(2, exp, keep_text=False)
    try:
        expected = to_units(text, exp)
    except PrecisionError:
        with pytest.raises(PrecisionError):
            book.apply_update([("1.00", text)], [])
        return
    bids, _ = book.apply_update([("1.00", text)], [])
    assert bids == (((100, expected),) if expected else ())


@given(st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False, allow_infinity=False))
def test_units_round_trip_through_text(value: Decimal) -> None:
    units = to_units(f"{value:f}", 8)
    assert Decimal(from_units(units, 8)) == value
    assert rescale(units, 8, 10) == units * 100


@settings(max_examples=300, deadline=None)
@given(updates)
def test_book_matches_a_dict_model_and_reports_only_real_changes(ops: list[tuple[str, str, str]]) -> None:
    book = OrderBook(2, 3)
    model: dict[str, dict[int, int]] = {BID: {}, ASK: {}}
    for side, price, qty in ops:
        p, q = to_units(price, 2), to_units(qty, 3)
        before = model[side].get(p, 0)
        change = book.apply(side, price, qty)
        if q:
            model[side][p] = q
        else:
            model[side].pop(p, None)
        assert change == (None if before == q else (p, q))
    assert book.top(BID) == sorted(model[BID].items(), reverse=True)
    assert book.top(ASK) == sorted(model[ASK].items())
    assert book.top(BID, 3) == book.top(BID)[:3]
    best_bid, best_ask = book.best_bid(), book.best_ask()
    assert book.is_crossed() == (best_bid is not None and best_ask is not None and best_bid[0] >= best_ask[0])


@settings(max_examples=100, deadline=None)
@given(updates, st.integers(min_value=1, max_value=10))
def test_truncate_keeps_the_best_levels_and_reports_the_rest_removed(
    ops: list[tuple[str, str, str]], depth: int
) -> None:
    book = OrderBook(2, 3)
    for side, price, qty in ops:
        book.apply(side, price, qty)
    before = book.top(BID)
    removed = book.truncate(BID, depth)
    assert book.top(BID) == before[:depth]
    assert sorted(p for p, _ in removed) == sorted(p for p, _ in before[depth:])
    assert all(q == 0 for _, q in removed)


@settings(max_examples=200, deadline=None)
@given(updates, updates, st.integers(min_value=0, max_value=12), st.sampled_from([BID, ASK]))
def test_a_loaded_book_then_deltas_then_truncate_match_a_dict_model(
    snapshot: list[tuple[str, str, str]], deltas: list[tuple[str, str, str]], depth: int, side: str
) -> None:
    """The sorted price lists kept beside the dicts: after a snapshot (sorted once), deltas (kept in step with
    bisect), and truncation of either side, every read agrees with a plain dict model."""
    book = OrderBook(2, 3)
    model: dict[str, dict[int, int]] = {BID: {}, ASK: {}}

    def into_model(ops: list[tuple[str, str, str]]) -> None:
        for s, price, qty in ops:
            p, q = to_units(price, 2), to_units(qty, 3)
            if q:
                model[s][p] = q
            else:
                model[s].pop(p, None)

    book.load([(p, q) for s, p, q in snapshot if s == BID], [(p, q) for s, p, q in snapshot if s == ASK])
    into_model(snapshot)
    for s, price, qty in deltas:
        book.apply_many(s, [(price, qty)])
    into_model(deltas)
    best_first = {BID: sorted(model[BID].items(), reverse=True), ASK: sorted(model[ASK].items())}
    removed = book.truncate(side, depth)
    assert removed == [(p, 0) for p, _ in best_first[side][depth:][::-1]]  # the deepest first
    best_first[side] = best_first[side][:depth]
    for s in (BID, ASK):
        assert book.top(s) == best_first[s]
        assert book.top(s, 0) == []
        assert book.top(s, 3) == best_first[s][:3]
        assert book.top(s, 100) == best_first[s]
        assert book.depth(s) == len(best_first[s])
    assert book.best_bid() == (best_first[BID][0] if best_first[BID] else None)
    assert book.best_ask() == (best_first[ASK][0] if best_first[ASK] else None)


def test_published_checksum_vectors_verify() -> None:
    if not VECTORS.exists():
        pytest.skip(f"{VECTORS} not found")
    vectors = json.loads(VECTORS.read_text())
    for case in vectors["okx_books_checksum"]:
        assert okx_check_string(case["bids"], case["asks"]) == case["check_string"]
        assert okx_checksum(case["bids"], case["asks"]) == case["expected_checksum"]
    kraken = vectors["kraken_v2_book_checksum"]

    def text(levels: list[dict[str, float]]) -> list[tuple[str, str]]:
        fmt = lambda v, n: f"{Decimal(repr(v)):.{n}f}"  # noqa: E731
        return [(fmt(lv["price"], kraken["price_precision"]), fmt(lv["qty"], kraken["qty_precision"])) for lv in levels]

    assert kraken_checksum(text(kraken["bids"]), text(kraken["asks"])) == kraken["expected_checksum"]


def event(
    seq: int, kind: str, bids: tuple[tuple[int, int], ...] = (), asks: tuple[tuple[int, int], ...] = ()
) -> BookEvent:
    return BookEvent("x:A-B", seq, kind, bids, asks, 2, 2, None, 0, 0)


def test_replica_follows_snapshots_deltas_and_staleness() -> None:
    replica = BookReplica("x:A-B", 2, 2)
    assert replica.is_stale
    replica.apply(event(1, SNAPSHOT, ((100, 5), (99, 1)), ((101, 2),)))
    replica.apply(event(2, DELTA, ((100, 0),), ((102, 7),)))
    assert replica.top(BID) == [(99, 1)]
    assert replica.top(ASK) == [(101, 2), (102, 7)]
    assert not replica.apply(event(2, DELTA, ((99, 0),)))  # already applied: ignored
    with pytest.raises(SequenceGap):
        replica.apply(event(4, DELTA))
    replica.apply(event(3, STALE))
    assert replica.is_stale
    replica.apply(event(9, SNAPSHOT, ((50, 1),)))  # a reset may jump: it replaces everything
    assert (replica.seq, replica.is_stale, replica.top(BID)) == (9, False, [(50, 1)])


levels = st.dictionaries(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=100), max_size=10)
# A delta's levels: a quantity of 0 removes the level.
delta_levels = st.dictionaries(
    st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=100), max_size=10
)


@settings(max_examples=200, deadline=None)
@pytest.mark.parametrize("venue_exp", [2, 3])  # rescaled by 10 into the instrument's 3 decimals, or as it is
@given(
    steps=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), delta_levels, st.booleans(), st.booleans()), max_size=30)
)
def test_consolidated_book_is_the_sum_of_live_venue_books(
    venue_exp: int, steps: list[tuple[str, dict[int, int], bool, bool]]
) -> None:
    cons = ConsolidatedBook(price_exp=3, size_exp=3)
    k = 10 ** (3 - venue_exp)
    venues: dict[str, dict[int, int]] = {}
    mirror: dict[int, int] = {}
    for venue, new_levels, is_reset, goes_stale in steps:
        if goes_stale:
            changes, _ = cons.remove_venue(venue)
            venues.pop(venue, None)
        elif is_reset or venue not in venues:
            venues[venue] = {p: q for p, q in new_levels.items() if q}
            snapshot = tuple(venues[venue].items())
            changes, _ = cons.apply(venue, snapshot, (), price_exp=venue_exp, size_exp=venue_exp, is_reset=True)
        else:
            venues[venue] = {p: q for p, q in {**venues[venue], **new_levels}.items() if q}
            delta = tuple(new_levels.items())
            changes, _ = cons.apply(venue, delta, (), price_exp=venue_exp, size_exp=venue_exp, is_reset=False)
        for price, total in changes:
            if total:
                mirror[price] = total
            else:
                mirror.pop(price, None)
        expected: dict[int, int] = {}
        for book in venues.values():
            for price, qty in book.items():
                expected[price * k] = expected.get(price * k, 0) + qty * k
        assert dict(cons.levels(BID)) == expected
        assert mirror == expected  # the emitted deltas alone rebuild it
        for price, total in expected.items():
            assert sum(cons.shares(BID, price).values()) == total


@settings(max_examples=200, deadline=None)
@given(
    first=st.lists(st.tuples(st.sampled_from([BID, ASK]), prices, qtys), min_size=1, max_size=60),
    second=st.dictionaries(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=99)),
    then=st.lists(st.tuples(st.sampled_from([BID, ASK]), prices, qtys), max_size=60),
)
def test_one_venues_deltas_pass_through_the_consolidated_book_until_another_joins(
    first: list[tuple[str, str, str]], second: dict[int, int], then: list[tuple[str, str, str]]
) -> None:
    """While one venue feeds the book its deltas come out as they went in (its removals kept as zeros in the
    dicts, compacted every few entries here); the consolidated levels stay its book, and stay the sum once a
    second venue joins and leaves again."""
    venue_book = OrderBook(2, 3, keep_text=False)
    mirror: dict[str, dict[int, int]] = {BID: {}, ASK: {}}

    def take(changes: tuple[tuple[int, int], ...], side: str) -> None:
        for price, total in changes:
            if total:
                mirror[side][price] = total
            else:
                mirror[side].pop(price, None)

    def feed(ops: list[tuple[str, str, str]], *, alone: bool) -> None:
        for side, price, qty in ops:
            delta = tuple(venue_book.apply_many(side, [(price, qty)]))
            bids, asks = (delta, ()) if side == BID else ((), delta)
            out_bids, out_asks = cons.apply("a", bids, asks, price_exp=2, size_exp=3, is_reset=False)
            if alone:
                assert (out_bids, out_asks) == (bids, asks)
            take(out_bids, BID)
            take(out_asks, ASK)

    with patch("apps.orderbook.domain.consolidated.COMPACT_MIN", 4):
        cons = ConsolidatedBook(price_exp=2, size_exp=3)
        cons.apply("a", (), (), price_exp=2, size_exp=3, is_reset=True)
        feed(first, alone=True)
        for side in (BID, ASK):
            assert cons.levels(side) == tuple(venue_book.top(side))
            assert mirror[side] == dict(venue_book.top(side))
            for price, qty in venue_book.top(side):
                assert cons.shares(side, price) == {"a": qty}
        # A second venue: sums by price, both shares.
        take(cons.apply("b", tuple(second.items()), (), price_exp=2, size_exp=3, is_reset=True)[0], BID)
        feed(then, alone=False)
        expected = dict(venue_book.top(BID))
        for price, qty in second.items():
            expected[price] = expected.get(price, 0) + qty
        assert dict(cons.levels(BID)) == mirror[BID] == expected
        for price, qty in second.items():
            assert cons.shares(BID, price)["b"] == qty
        # It leaves: the first venue's book alone again, and its deltas pass through again.
        take(cons.remove_venue("b")[0], BID)
        assert cons.levels(BID) == tuple(venue_book.top(BID))
        assert mirror[BID] == dict(venue_book.top(BID))
        feed(then, alone=True)
        assert cons.levels(ASK) == tuple(venue_book.top(ASK))
        assert mirror[ASK] == dict(venue_book.top(ASK))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([SNAPSHOT, DELTA, DELTA, DELTA, STALE]), delta_levels, delta_levels)))
def test_the_publishers_checkpoint_replica_holds_what_a_replica_holds(
    steps: list[tuple[str, dict[int, int], dict[int, int]]],
) -> None:
    """CheckpointReplica takes deltas in with `dict.update`, zeros included, and drops the zeros when read."""
    replica, checkpoint = BookReplica("x:A-B", 2, 2), CheckpointReplica("x:A-B", 2, 2)
    for seq, (kind, bid_levels, ask_levels) in enumerate(steps, start=1):
        keep = (lambda q: q > 0) if kind == SNAPSHOT else (lambda q: True)  # a snapshot holds no removals
        bids = tuple((p, q) for p, q in bid_levels.items() if keep(q))
        asks = tuple((p, q) for p, q in ask_levels.items() if keep(q))
        published = event(seq, kind, bids, asks)
        replica.apply(published)
        checkpoint.apply(published)
        assert checkpoint.top(BID) == replica.top(BID)
        assert checkpoint.top(ASK, 3) == replica.top(ASK, 3)
        assert (checkpoint.depth(BID), checkpoint.is_stale) == (replica.depth(BID), replica.is_stale)
    ours, theirs = checkpoint.snapshot_event(1), replica.snapshot_event(1)
    assert (ours.kind, ours.bids, ours.asks) == (theirs.kind, theirs.bids, theirs.asks)
