"""Hypothesis properties of the metric formulas and of the rolling window."""

from __future__ import annotations

from decimal import Decimal
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.microstructure.domain import window as window_module
from apps.microstructure.domain.metrics import MetricsParams, compute_all_windows, compute_metrics
from apps.microstructure.domain.types import BUY, SELL, BookLevels, Scale, TopSample, TradeTick
from apps.microstructure.domain.window import MarketWindow

SCALE = Scale(price_exp=2, size_exp=2)
S = 1_000_000_000
SIZES = tuple(Decimal(n) / 4 for n in range(1, 40, 3))  # 0.25 .. 9.25, ascending
PARAMS = MetricsParams(depth_levels=5, impact_sizes=SIZES)


@st.composite
def books(draw: st.DrawFn) -> BookLevels:
    """An uncrossed book: distinct bid prices below distinct ask prices, positive quantities."""
    bid_prices = sorted(draw(st.sets(st.integers(9000, 9999), min_size=1, max_size=12)), reverse=True)
    ask_prices = sorted(draw(st.sets(st.integers(10001, 11000), min_size=1, max_size=12)))
    qty = st.integers(1, 500)
    bids = tuple((p, draw(qty)) for p in bid_prices)
    asks = tuple((p, draw(qty)) for p in ask_prices)
    return BookLevels(0, bids, asks)


def metrics_of(book: BookLevels) -> dict[str, object]:
    result = compute_metrics(MarketWindow(SCALE, 310 * S), book, window_s=10, now_ns=10 * S, params=PARAMS)
    return {name: metric.value for name, metric in result.metrics.items()}


@settings(max_examples=200)
@given(books())
def test_impact_and_slippage_never_shrink_as_size_grows(book: BookLevels) -> None:
    values = metrics_of(book)
    for name in ("price_impact_bps", "slippage_bps"):
        table = values[name]
        assert isinstance(table, dict)
        for side in ("buy", "sell"):
            series = [table[side][str(size.normalize())] for size in SIZES]
            assert series == sorted(series), (name, side, series)
    unfilled = values["impact_unfilled_base"]
    assert isinstance(unfilled, dict)
    for side in ("buy", "sell"):
        series = [unfilled[side][str(size.normalize())] for size in SIZES]
        assert series == sorted(series)


@settings(max_examples=200)
@given(books())
def test_spread_is_positive_and_mids_lie_inside_the_touch_on_an_uncrossed_book(book: BookLevels) -> None:
    values = metrics_of(book)
    assert isinstance(values["spread_bps"], Decimal)
    assert values["spread_bps"] > 0
    bid, ask = values["best_bid_price"], values["best_ask_price"]
    assert isinstance(bid, Decimal)
    assert isinstance(ask, Decimal)
    for name in ("mid_price", "microprice"):
        price = values[name]
        assert isinstance(price, Decimal)
        assert bid <= price <= ask
    assert isinstance(values["book_imbalance"], Decimal)
    assert -1 <= values["book_imbalance"] <= 1


trade_st = st.tuples(
    st.integers(0, 10 * S), st.integers(9900, 10100), st.integers(1, 1000), st.sampled_from([BUY, SELL, ""])
)


@settings(max_examples=200)
@given(st.lists(trade_st, min_size=1, max_size=60))
def test_vwap_lies_within_the_traded_prices_and_flow_imbalance_within_one(
    trades: list[tuple[int, int, int, str]],
) -> None:
    window = MarketWindow(SCALE, 310 * S)
    for ts, price, qty, side in trades:
        window.add_trade(TradeTick(ts, price, qty, side))
    metrics = compute_metrics(window, None, window_s=10, now_ns=10 * S, params=PARAMS).metrics
    vwap = metrics["vwap_price"].value
    assert isinstance(vwap, Decimal)
    prices = [Decimal(price) / 100 for _, price, _, _ in trades]
    assert min(prices) <= vwap <= max(prices)
    tfi = metrics["trade_flow_imbalance"].value
    if any(side for *_, side in trades):
        assert isinstance(tfi, Decimal)
        assert -1 <= tfi <= 1
    else:
        assert tfi is None


step_st = st.tuples(
    st.integers(-3, 3),  # bid move in ticks
    st.integers(1, 4),  # spread in ticks
    st.integers(1, 50),  # bid queue
    st.integers(1, 50),  # ask queue
    st.lists(st.tuples(st.integers(0, 999), st.integers(-2, 6), st.integers(1, 40), st.sampled_from([BUY, SELL, ""]))),
)


def replay(steps: list[tuple[int, int, int, int, list[tuple[int, int, int, str]]]], keep_ns: int, evict: bool):
    """Feed one sample per second, each followed by its trades (out of order within the second)."""
    window = MarketWindow(SCALE, keep_ns, realised_horizon_ns=2 * S)
    events: list[TopSample | TradeTick] = []
    bid = 10000
    for second, (move, spread, bid_qty, ask_qty, trades) in enumerate(steps):
        bid += move
        ts = second * S
        events.append(TopSample(ts, bid, bid_qty, bid + spread, ask_qty))
        events.extend(TradeTick(ts + ms * 1_000_000, bid + offset, qty, side) for ms, offset, qty, side in trades)
        if evict:
            for event in events[-1 - len(trades) :]:
                _add(window, event)
            window.evict(ts)
    return window, events


def _add(window: MarketWindow, event: TopSample | TradeTick) -> None:
    if isinstance(event, TopSample):
        window.add_sample(event)
    else:
        window.add_trade(event)


@settings(max_examples=150, deadline=None)
@given(st.lists(step_st, min_size=2, max_size=40))
def test_a_window_kept_incrementally_equals_one_built_from_the_kept_inputs(
    steps: list[tuple[int, int, int, int, list[tuple[int, int, int, str]]]],
) -> None:
    keep_ns = 10 * S
    with patch.object(window_module, "COMPACT_AFTER", 3):  # compact often, so compaction is exercised too
        incremental, events = replay(steps, keep_ns, evict=True)
    now = (len(steps) - 1) * S
    cutoff = now - keep_ns
    boundary = max((e.ts_ns for e in events if isinstance(e, TopSample) and e.ts_ns <= cutoff), default=0)
    fresh = MarketWindow(SCALE, keep_ns, realised_horizon_ns=2 * S)
    for event in events:
        if event.ts_ns >= (boundary if isinstance(event, TopSample) else cutoff):
            _add(fresh, event)
    params = MetricsParams(realised_spread_horizon_s=2, regression_buckets=4)
    ours = compute_all_windows(incremental, None, now_ns=now, params=params, windows_s=(3, 10))
    theirs = compute_all_windows(fresh, None, now_ns=now, params=params, windows_s=(3, 10))
    # Every figure agrees; what each window saw does not (the incremental one saw the evicted inputs too).
    assert {w: r.as_json()["metrics"] for w, r in ours.items()} == {
        w: r.as_json()["metrics"] for w, r in theirs.items()
    }
    ofi = ours[10].metrics["order_flow_imbalance_base"]
    assert ofi.inputs == min(len(steps) - 1, 10)


@settings(max_examples=200)
@given(books(), st.lists(st.integers(0, 500), min_size=1, max_size=4, unique=True))
def test_depth_within_a_band_is_every_level_whose_price_is_inside_it(book: BookLevels, bands: list[int]) -> None:
    params = MetricsParams(bands_bps=tuple(bands))
    result = compute_metrics(MarketWindow(SCALE, 310 * S), book, window_s=10, now_ns=10 * S, params=params)
    mid = (Decimal(book.bids[0][0]) + Decimal(book.asks[0][0])) / 2
    for name, levels, inside in (
        ("depth_ask_within_bps", book.asks, lambda p, b: p <= mid * (1 + Decimal(b) / 10_000)),
        ("depth_bid_within_bps", book.bids, lambda p, b: p >= mid * (1 - Decimal(b) / 10_000)),
    ):
        expected = {str(b): Decimal(sum(q for p, q in levels if inside(p, b))) / 100 for b in bands}
        assert result.metrics[name].value == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(trade_st, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_trades_in_any_arrival_order_give_the_figures_of_time_order(trades, rng) -> None:
    samples = [TopSample(k * S // 2, 10000 + k % 3, 10 + k, 10004 + k % 5, 30 - k) for k in range(21)]
    params = MetricsParams(realised_spread_horizon_s=2, regression_buckets=4)
    shuffled = list(trades)
    rng.shuffle(shuffled)
    results = []
    for order in (sorted(trades, key=lambda t: t[0]), shuffled):
        window = MarketWindow(SCALE, 310 * S, realised_horizon_ns=2 * S)
        for sample in samples:
            window.add_sample(sample)
        for ts, price, qty, side in order:
            window.add_trade(TradeTick(ts, price, qty, side))
        results.append(compute_all_windows(window, None, now_ns=10 * S, params=params, windows_s=(3, 10)))
    assert {w: r.as_json() for w, r in results[0].items()} == {w: r.as_json() for w, r in results[1].items()}
