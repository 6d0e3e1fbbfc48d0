"""The simulated market keeps a sane book and speaks Binance: contiguous diffs that rebuild it exactly."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.simulator import SimulatedMarket

PRICE_EXP, SIZE_EXP = 2, 6
MS = 1_000_000


def make_market(seed: int, *, levels: int = 20, **kwargs) -> SimulatedMarket:
    return SimulatedMarket(
        "BTCUSDT",
        mid_price="65000.00",
        tick_size_exp=PRICE_EXP,
        size_exp=SIZE_EXP,
        rng=random.Random(seed),
        levels=levels,
        **kwargs,
    )


def units(text: str, exp: int) -> int:
    value = Decimal(text).scaleb(exp)
    assert value == value.to_integral_value(), text
    return int(value)


def load(snapshot: dict[str, Any]) -> dict[str, dict[int, int]]:
    return {
        side: {units(p, PRICE_EXP): units(q, SIZE_EXP) for p, q in snapshot[key]}
        for side, key in ((BID, "bids"), (ASK, "asks"))
    }


def apply_diff(book: dict[str, dict[int, int]], diff: dict[str, Any]) -> None:
    for side, key in ((BID, "b"), (ASK, "a")):
        for p, q in diff[key]:
            price, qty = units(p, PRICE_EXP), units(q, SIZE_EXP)
            assert qty >= 0
            if qty:
                book[side][price] = qty
            else:
                book[side].pop(price, None)


def internal(market: SimulatedMarket) -> dict[str, dict[int, int]]:
    return {side: dict(market.levels(side)) for side in (BID, ASK)}


# A flow that stresses the edges: thin bands, many market orders, a fast-moving mid.
flows = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32),
        "levels": st.integers(2, 40),
        "limit_prob": st.floats(0.0, 0.7),
        "market_prob": st.floats(0.0, 0.3),
        "mid_move_prob": st.floats(0.0, 0.5),
    }
)


def market_from(flow: dict[str, Any]) -> SimulatedMarket:
    flow = dict(flow)
    return make_market(flow.pop("seed"), **flow)


@settings(max_examples=60, deadline=None)
@given(flow=flows, steps=st.integers(1, 1500))
def test_book_never_crosses_and_both_sides_stay_quoted(flow, steps):
    market = market_from(flow)
    for i in range(steps):
        market.step(i * MS)
        bid, bid_qty, ask, ask_qty = market.top()
        assert bid < ask
        assert bid_qty > 0
        assert ask_qty > 0
        assert market.depth(BID) <= market.max_depth
        assert market.depth(ASK) <= market.max_depth
    for side in (BID, ASK):
        assert all(price > 0 and qty > 0 for price, qty in market.levels(side))


@settings(max_examples=60, deadline=None)
@given(flow=flows, steps=st.integers(1, 1500), drain_every=st.integers(1, 50))
def test_drained_diffs_are_contiguous_and_never_negative(flow, steps, drain_every):
    market = market_from(flow)
    previous_u = market.last_update_id
    for i in range(steps):
        market.step(i * MS)
        if i % drain_every == 0 and (diff := market.drain_depth_update(i)) is not None:
            assert diff["U"] == previous_u + 1
            assert diff["u"] >= diff["U"]
            assert diff["u"] == market.last_update_id
            assert all(Decimal(q) >= 0 for _, q in diff["b"] + diff["a"])
            previous_u = diff["u"]


@settings(max_examples=60, deadline=None)
@given(flow=flows, before=st.integers(0, 800), after=st.integers(1, 800), drain_every=st.integers(1, 40))
def test_snapshot_plus_drained_diffs_rebuilds_the_book_exactly(flow, before, after, drain_every):
    """The Binance rule end to end: snapshot mid-window, drop diffs with u <= lastUpdateId, apply the rest."""
    market = market_from(flow)
    diffs = []
    for i in range(before):
        market.step(i * MS)
        if i % drain_every == 0 and (diff := market.drain_depth_update(i)) is not None:
            diffs.append(diff)
    snapshot = market.snapshot(5000)
    book = load(snapshot)
    assert book == internal(market)
    for i in range(after):
        market.step((before + i) * MS)
        if i % drain_every == 0 and (diff := market.drain_depth_update(i)) is not None:
            diffs.append(diff)
    if (diff := market.drain_depth_update(0)) is not None:
        diffs.append(diff)
    last_id = snapshot["lastUpdateId"]
    kept = [d for d in diffs if d["u"] > last_id]
    if kept:
        assert kept[0]["U"] <= last_id + 1 <= kept[0]["u"]
    for diff in kept:
        apply_diff(book, diff)
    assert book == internal(market)


@settings(max_examples=40, deadline=None)
@given(flow=flows, steps=st.integers(1, 600))
def test_book_ticker_is_the_top_of_book_at_the_last_update_id(flow, steps):
    market = market_from(flow)
    for i in range(steps):
        market.step(i * MS)
    ticker = market.book_ticker()
    bid, bid_qty, ask, ask_qty = market.top()
    assert ticker["u"] == market.last_update_id
    assert ticker["s"] == "BTCUSDT"
    assert (units(ticker["b"], PRICE_EXP), units(ticker["B"], SIZE_EXP)) == (bid, bid_qty)
    assert (units(ticker["a"], PRICE_EXP), units(ticker["A"], SIZE_EXP)) == (ask, ask_qty)
    assert market.levels(BID, 1) == [(bid, bid_qty)]
    assert market.levels(ASK, 1) == [(ask, ask_qty)]


@settings(max_examples=60, deadline=None)
@given(flow=flows, steps=st.integers(1, 1500))
def test_trades_walk_the_side_their_aggressor_takes_from(flow, steps):
    """A buyer (m=false) lifts asks best-first, a seller (m=true) hits bids; every level but the last is emptied."""
    market = market_from(flow)
    for i in range(steps):
        before = internal(market)
        trades = market.step(i * MS)
        if not trades:
            continue
        assert len({t["m"] for t in trades}) == 1
        is_buyer_maker = trades[0]["m"]
        walked = before[BID] if is_buyer_maker else before[ASK]
        best_first = sorted(walked, reverse=is_buyer_maker)
        fills = [(units(t["p"], PRICE_EXP), units(t["q"], SIZE_EXP)) for t in trades]
        assert [price for price, _ in fills] == best_first[: len(fills)]
        for n, (price, qty) in enumerate(fills):
            assert 0 < qty <= walked[price]
            if n < len(fills) - 1:
                assert qty == walked[price]
        assert [t["a"] for t in trades] == list(range(trades[0]["a"], trades[0]["a"] + len(trades)))
        assert all(t["e"] == "aggTrade" and t["T"] == i and t["s"] == "BTCUSDT" for t in trades)


def test_same_seed_replays_the_same_stream():
    def run(seed: int) -> list[Any]:
        market = make_market(seed, levels=50)
        out: list[Any] = []
        for i in range(2000):
            out += market.step(i * MS)
            if i % 100 == 0:
                out.append(market.drain_depth_update(i))
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_nothing_changed_drains_nothing():
    market = make_market(1)
    assert market.drain_depth_update(0) is None
    while market.drain_depth_update(0) is None:
        market.step(0)
    assert market.drain_depth_update(0) is None


def test_text_is_binance_fixed_eight_decimals():
    market = make_market(3, levels=5, mean_qty_units=1000)
    snapshot = market.snapshot(2)
    assert snapshot["bids"][0][0] == "65000.00000000"
    assert snapshot["asks"][0][0] == "65000.01000000"
    assert len(snapshot["bids"]) == 2
    assert len(snapshot["asks"]) == 2
    for price, qty in snapshot["bids"] + snapshot["asks"]:
        assert len(price.partition(".")[2]) == 8
        assert len(qty.partition(".")[2]) == 8

    def has_delete(diff: dict[str, Any] | None) -> bool:
        return diff is not None and any(q == "0.00000000" for _, q in diff["b"] + diff["a"])

    while not has_delete(diff := market.drain_depth_update(5)):
        market.step(0)
    assert diff is not None
    assert diff["e"] == "depthUpdate"
    assert diff["E"] == 5
    assert diff["s"] == "BTCUSDT"


def test_mid_price_as_ticks_equals_mid_price_as_text():
    from_text = make_market(5)
    from_ticks = SimulatedMarket(
        "btcusdt", mid_price=6_500_000, tick_size_exp=PRICE_EXP, size_exp=SIZE_EXP, rng=random.Random(5), levels=20
    )
    assert from_ticks.symbol == "BTCUSDT"
    assert from_text.snapshot(100) == from_ticks.snapshot(100)


def test_the_opening_book_fills_the_band_on_both_sides():
    market = make_market(9, levels=30)
    assert market.depth(BID) == market.depth(ASK) == 30
    assert market.top()[0] == 6_500_000
    assert market.top()[2] == 6_500_001


def test_a_mid_too_low_for_the_band_is_refused():
    with pytest.raises(ValueError, match="ticks"):
        SimulatedMarket("X", mid_price="0.05", tick_size_exp=2, size_exp=6, rng=random.Random(1), levels=20)
