"""Window metrics against values worked out by hand on the ten-second window of `fixtures`.

Mids of the samples at 0, 2, 4, 6, 8, 10 s: 100.05, 100.05, 100.15, 100.05, 100.15, 100.05.
"""

from __future__ import annotations

import statistics
from decimal import Decimal
from fractions import Fraction

import pytest

from apps.microstructure.domain.metrics import MetricsParams, compute_metrics
from apps.microstructure.domain.types import BUY, SELL, TopSample, TradeTick
from apps.microstructure.domain.window import MarketWindow

from .fixtures import BOOK, FLOW_PARAMS, KEEP_NS, SAMPLES, SCALE, TRADES, S, bps, filled_window, flow_result

D = Decimal
UP, DOWN = D("0.10") / D("100.05"), D("-0.10") / D("100.15")  # the two mid returns of the path


def test_order_flow_imbalance_sums_the_cont_kukanov_stoikov_terms() -> None:
    # e_n = qb_n[b_n >= b_n-1] - qb_n-1[b_n <= b_n-1] - qa_n[a_n <= a_n-1] + qa_n-1[a_n >= a_n-1]
    # 0→2 s: both touches unchanged: bid 3.0 - 2.0, ask -1.0 + 1.0        → +1.0
    # 2→4 s: bid up (+1.0 new queue), ask up (+1.0 old queue)            → +2.0
    # 4→6 s: bid down (-1.0 old queue), ask down (-2.0 new queue)        → -3.0
    # 6→8 s: bid unchanged (4.0 - 4.0), ask up (+2.0 old queue)          → +2.0
    # 8→10 s: bid unchanged, ask down (-1.0 new queue)                   → -1.0
    metric = flow_result().metrics["order_flow_imbalance_base"]
    assert metric.value == D("1.0")  # 1 + 2 - 3 + 2 - 1
    assert metric.inputs == 5


def test_order_flow_imbalance_counts_only_pairs_inside_the_window() -> None:
    # [5 s, 10 s] holds the samples at 6, 8, 10 s: pairs 6→8 (+2.0) and 8→10 (-1.0).
    metric = flow_result(window_s=5).metrics["order_flow_imbalance_base"]
    assert (metric.value, metric.inputs) == (D("1.0"), 2)


def test_realised_volatility_annualises_by_the_sampling_interval() -> None:
    # Simple returns: 0, +0.10/100.05, -0.10/100.15, +0.10/100.05, -0.10/100.15 over 5 intervals of 2 s.
    # sigma = sqrt(sum r^2 / 10 s * 31,536,000 s per year).
    expected = (2 * UP * UP + 2 * DOWN * DOWN) / 10 * 31_536_000
    metric = flow_result().metrics["realised_volatility_annualised"]
    assert metric.inputs == 5
    assert isinstance(metric.value, Decimal)
    assert abs(metric.value - expected.sqrt()) <= D("1e-12")
    assert metric.value.quantize(D("0.000001")) == D("3.548129")  # sqrt(12.5892...)


def test_the_same_returns_twice_as_often_give_sqrt_two_times_the_volatility() -> None:
    # Annualising by the interval: returns every 1 s instead of every 2 s mean twice as many per year.
    fast = filled_window(samples=tuple(TopSample(s.ts_ns // 2, s.bid, s.bid_qty, s.ask, s.ask_qty) for s in SAMPLES))
    slow_vol = flow_result().metrics["realised_volatility_annualised"].value
    fast_vol = flow_result(fast, now_ns=5 * S, window_s=5).metrics["realised_volatility_annualised"].value
    assert isinstance(slow_vol, Decimal)
    assert isinstance(fast_vol, Decimal)
    assert abs(fast_vol / slow_vol - D(2).sqrt()) < D("1e-12")


def test_spread_volatility_is_the_sample_deviation_of_sampled_spreads() -> None:
    # Spreads (bps): 0.10/100.05 at 0, 2, 6, 10 s; 0.10/100.15 at 4 s; 0.30/100.15 at 8 s.
    spreads = [D("0.10") / D("100.05") * 10_000] * 4 + [
        D("0.10") / D("100.15") * 10_000,
        D("0.30") / D("100.15") * 10_000,
    ]
    metric = flow_result().metrics["spread_volatility_bps"]
    assert metric.inputs == 6
    assert isinstance(metric.value, Decimal)
    assert abs(metric.value - statistics.stdev(spreads)) <= D("0.000001")  # 8.157... bps, not 0
    assert metric.value > 8


def test_spread_volatility_of_a_constant_spread_is_zero() -> None:
    samples = tuple(TopSample(k * S, 10000, 10 + k, 10010, 20 - k) for k in range(11))  # only queues move
    metric = flow_result(filled_window(samples=samples)).metrics["spread_volatility_bps"]
    assert (metric.value, metric.inputs) == (D("0"), 11)


def test_volumes_flow_imbalance_vwap_count_and_intensity() -> None:
    metrics = flow_result().metrics
    assert metrics["volume_base"].value == D("4.5")  # 1.0 + 2.0 + 0.5 + 1.0
    assert metrics["buy_volume_base"].value == D("1.5")  # 1.0 + 0.5
    assert metrics["sell_volume_base"].value == D("2.0")
    assert metrics["trade_flow_imbalance"].value == D("-0.142857142857")  # (1.5 - 2.0) / 3.5
    # (100.10*1.0 + 100.00*2.0 + 100.20*0.5 + 100.05*1.0) / 4.5 = 450.25 / 4.5 = 100.05555...
    assert metrics["vwap_price"].value == D("100.05555556")
    assert metrics["trade_count"].value == 4
    assert metrics["trade_intensity_per_s"].value == D("0.4")  # 4 trades / 10 s


def test_effective_spread_uses_the_mid_sampled_before_each_trade() -> None:
    # 2|p - m| / m: 100.10 vs 100.05, 100.00 vs 100.05, 100.20 vs 100.15, 100.05 vs 100.15.
    per_trade = [2 * D("0.05") / D("100.05")] * 2 + [2 * D("0.05") / D("100.15"), 2 * D("0.10") / D("100.15")]
    metric = flow_result().metrics["effective_spread_bps"]
    assert metric.inputs == 4
    assert metric.value == bps(sum(per_trade), 4) == D("12.486268")


def test_realised_spread_uses_the_mid_five_seconds_later_and_skips_trades_without_one() -> None:
    # 2d(p - m') / m with m' the first mid at or after t + 5 s:
    # buy 100.10 at 1 s, m' (6 s) 100.05: 2 * 0.05 / 100.05; sell 100.00 at 3 s, m' (8 s) 100.15:
    # 2 * 0.15 / 100.05; buy 100.20 at 5 s, m' (10 s) 100.05: 2 * 0.15 / 100.15. The 9 s trade has no side.
    per_trade = [D("0.10") / D("100.05"), D("0.30") / D("100.05"), D("0.30") / D("100.15")]
    metric = flow_result().metrics["realised_spread_bps"]
    assert metric.inputs == 3
    assert metric.value == bps(sum(per_trade), 3) == D("23.311692")


def test_kyle_lambda_is_the_slope_of_bucket_returns_on_signed_notional() -> None:
    # Five 2 s buckets; signed notional S and mid return r (bps):
    # [0,2): +100.10, 0;  [2,4): -200.00, +UP;  [4,6): +50.10, DOWN;  [6,8): 0, +UP;  [8,10]: 0 (no side), DOWN
    flows = [Fraction("100.10"), Fraction("-200.00"), Fraction("50.10"), Fraction(0), Fraction(0)]
    up, down = Fraction(10, 10005) * 10_000, Fraction(-10, 10015) * 10_000
    returns = [Fraction(0), up, down, up, down]
    s_mean, r_mean = sum(flows) / 5, sum(returns) / 5
    slope = sum((s - s_mean) * (r - r_mean) for s, r in zip(flows, returns, strict=True)) / sum(
        (s - s_mean) ** 2 for s in flows
    )
    metric = flow_result().metrics["kyle_lambda_bps_per_notional"]
    assert metric.inputs == 5
    assert isinstance(metric.value, Decimal)
    assert abs(Fraction(metric.value) - slope) <= abs(slope) * Fraction(1, 10**10)
    assert metric.value < 0  # selling came before the rises here


def test_amihud_is_the_mean_absolute_return_per_notional_of_traded_buckets() -> None:
    # Buckets with notional: 0 / 100.10, |UP| / 200.00, |DOWN| / 50.10, |DOWN| / 100.05 (the sideless trade).
    up, down = Fraction(10, 10005) * 10_000, Fraction(10, 10015) * 10_000
    expected = (0 + up / Fraction("200.00") + down / Fraction("50.10") + down / Fraction("100.05")) / 4
    metric = flow_result().metrics["amihud_illiquidity_bps_per_notional"]
    assert metric.inputs == 4
    assert isinstance(metric.value, Decimal)
    assert abs(Fraction(metric.value) - expected) <= expected * Fraction(1, 10**10)


def test_an_empty_window_reports_zero_counts_and_nulls_with_reasons() -> None:
    window = MarketWindow(SCALE, KEEP_NS)
    metrics = compute_metrics(window, BOOK, window_s=10, now_ns=10 * S, params=FLOW_PARAMS).metrics
    assert metrics["trade_count"].value == 0
    assert metrics["volume_base"].value == D("0")
    expected = {
        "vwap_price": "no_trades",
        "trade_flow_imbalance": "no_trades",
        "effective_spread_bps": "no_trades",
        "realised_spread_bps": "no_trades",
        "order_flow_imbalance_base": "too_few_samples",
        "realised_volatility_annualised": "too_few_samples",
        "spread_volatility_bps": "too_few_samples",
        "kyle_lambda_bps_per_notional": "too_few_samples",
        "amihud_illiquidity_bps_per_notional": "too_few_samples",
    }
    assert {name: (metrics[name].value, metrics[name].reason) for name in expected} == {
        name: (None, reason) for name, reason in expected.items()
    }


def test_trades_without_an_aggressor_side_null_the_signed_metrics() -> None:
    trades = tuple(TradeTick(t.ts_ns, t.price, t.qty, "") for t in TRADES)
    metrics = flow_result(filled_window(trades=trades)).metrics
    assert metrics["volume_base"].value == D("4.5")
    for name in ("buy_volume_base", "sell_volume_base", "trade_flow_imbalance"):
        assert (metrics[name].value, metrics[name].reason) == (None, "no_aggressor_side")
    assert (metrics["realised_spread_bps"].value, metrics["realised_spread_bps"].reason) == (None, "no_later_mid")
    assert (metrics["kyle_lambda_bps_per_notional"].reason) == "no_signed_flow_variance"


def test_trades_before_any_sample_have_no_effective_spread() -> None:
    window = MarketWindow(SCALE, KEEP_NS)
    window.add_trade(TradeTick(1 * S, 10010, 10, BUY))
    window.add_trade(TradeTick(2 * S, 10000, 10, SELL))
    metrics = compute_metrics(window, BOOK, window_s=10, now_ns=10 * S, params=FLOW_PARAMS).metrics
    assert metrics["trade_count"].value == 2
    assert (metrics["effective_spread_bps"].value, metrics["effective_spread_bps"].reason) == (
        None,
        "no_mid_before_trades",
    )


def test_a_horizon_that_differs_from_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="realised"):
        compute_metrics(
            filled_window(), BOOK, window_s=10, now_ns=10 * S, params=MetricsParams(realised_spread_horizon_s=7)
        )


def test_a_window_longer_than_kept_is_refused() -> None:
    with pytest.raises(ValueError, match="longer"):
        compute_metrics(filled_window(), BOOK, window_s=600, now_ns=10 * S, params=FLOW_PARAMS)
