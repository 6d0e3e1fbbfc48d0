"""MarketWindow bookkeeping: late trades, out-of-order samples, eviction and compaction."""

from __future__ import annotations

from decimal import Decimal

from apps.microstructure.domain.metrics import compute_all_windows, compute_metrics
from apps.microstructure.domain.types import BUY, SELL, TopSample, TradeTick
from apps.microstructure.domain.window import MarketWindow, ofi_contribution

from .fixtures import BOOK, FLOW_PARAMS, KEEP_NS, SAMPLES, SCALE, TRADES, S, filled_window, flow_result


def test_a_late_trade_is_placed_in_time_order() -> None:
    # The 3 s sell arrives after the 5 s buy: every figure equals the in-order window's.
    window = MarketWindow(SCALE, KEEP_NS)
    for sample in SAMPLES:
        window.add_sample(sample)
    for trade in (TRADES[0], TRADES[2], TRADES[1], TRADES[3]):
        window.add_trade(trade)
    in_order = MarketWindow(SCALE, KEEP_NS)
    for sample in SAMPLES:
        in_order.add_sample(sample)
    for trade in TRADES:
        in_order.add_trade(trade)
    assert flow_result(window).as_json() == flow_result(in_order).as_json()


def test_a_late_trade_counts_in_the_window_by_its_own_time() -> None:
    window = filled_window()
    window.add_trade(TradeTick(int(4.5 * S), 10010, 30, SELL))  # after the 9 s trade, stamped 4.5 s
    metrics = compute_metrics(window, BOOK, window_s=5, now_ns=9 * S, params=FLOW_PARAMS).metrics
    # [4 s, 9 s]: the 4.5 s sell (3.0), the 5 s buy (0.5) and the 9 s sideless trade (1.0).
    assert metrics["volume_base"].value == Decimal("4.5")
    assert metrics["sell_volume_base"].value == Decimal("3.0")
    # Its realised spread is due at once: the mid at 10 s (100.05) is already known.
    realised = compute_metrics(window, BOOK, window_s=10, now_ns=10 * S, params=FLOW_PARAMS).metrics
    assert realised["realised_spread_bps"].inputs == 4


def test_a_sample_not_later_than_the_last_is_ignored() -> None:
    window = filled_window()
    window.add_sample(TopSample(9 * S, 9000, 10, 11000, 10))  # would make a huge spread and return
    assert flow_result(window).as_json() == flow_result().as_json()


def test_eviction_drops_old_trades_but_keeps_the_mid_at_the_cutoff() -> None:
    window = MarketWindow(SCALE, keep_ns=5 * S)
    for sample in SAMPLES:
        window.add_sample(sample)
    for trade in TRADES:
        window.add_trade(trade)
    window.evict(now_ns=10 * S)  # cutoff 5 s: trades at 1 s and 3 s go; the 4 s sample stays
    assert window.trade_total == 2
    assert window.sample_total == 4  # 4, 6, 8, 10 s
    assert window.mid2_at(5 * S) == 10010 + 10020


def test_compaction_keeps_every_sum() -> None:
    # 3 trades and 1 sample per 100 ms over 20 minutes; with 5 minutes kept the lists compact repeatedly.
    keep_ns = 310 * S
    window = MarketWindow(SCALE, keep_ns)
    step = S // 10
    for k in range(12_000):
        ts = k * step
        window.add_sample(TopSample(ts, 10000 + k % 7, 10 + k % 5, 10010 + k % 7, 10 + k % 3))
        for j in range(3):
            window.add_trade(TradeTick(ts + j, 10005 + j, 1 + j, BUY if (k + j) % 2 else SELL))
        if k % 10 == 0:
            window.evict(ts)
    now = 11_999 * step
    window.evict(now)
    assert len(window._t_ts) < 2 * (keep_ns // step) * 3  # compacted, not grown without bound
    # A fresh window fed the kept span (from the last sample at or before the cutoff) agrees exactly.
    fresh = MarketWindow(SCALE, keep_ns)
    cutoff = now - keep_ns
    first = cutoff // step
    for k in range(first, 12_000):
        ts = k * step
        fresh.add_sample(TopSample(ts, 10000 + k % 7, 10 + k % 5, 10010 + k % 7, 10 + k % 3))
        for j in range(3):
            if ts + j >= cutoff:
                fresh.add_trade(TradeTick(ts + j, 10005 + j, 1 + j, BUY if (k + j) % 2 else SELL))
    ours = compute_all_windows(window, BOOK, now_ns=now, params=FLOW_PARAMS)
    theirs = compute_all_windows(fresh, BOOK, now_ns=now, params=FLOW_PARAMS)
    assert {w: r.as_json() for w, r in ours.items()} == {w: r.as_json() for w, r in theirs.items()}
    # [now - 300 s, now] spans steps 8999..11999: 3000 full steps, and at `now` only its first trade.
    assert ours[300].metrics["trade_count"].value == 3000 * 3 + 1


def test_ofi_term_of_a_bid_that_improves_is_its_new_queue() -> None:
    before = TopSample(0, 10000, 20, 10010, 10)
    after = TopSample(1, 10005, 7, 10010, 10)
    assert ofi_contribution(before, after) == 7  # +7 new bid queue; ask unchanged: -10 + 10


def test_a_sample_with_an_empty_side_breaks_the_return_and_ofi_chain() -> None:
    samples = (*SAMPLES[:3], TopSample(6 * S, 10000, 40, 0, 0), *SAMPLES[4:])
    metrics = flow_result(filled_window(samples=samples)).metrics
    # Pairs 0→2 and 2→4 s remain, 4→6 and 6→8 s touch the empty ask; 8→10 s remains: 3 of 5.
    assert metrics["order_flow_imbalance_base"].inputs == 3
    assert metrics["order_flow_imbalance_base"].value == Decimal("2.0")  # +1.0 + 2.0 - 1.0
    assert metrics["realised_volatility_annualised"].inputs == 3
    assert metrics["spread_volatility_bps"].inputs == 5


def test_coverage_says_how_much_of_each_window_the_process_saw() -> None:
    """A process that started (or preloaded trades) less than a window ago: its flow metrics describe only
    the part it saw, and the result says which part."""
    window = MarketWindow(SCALE, KEEP_NS, trades_from_ns=100 * S)  # listening for trades since 100 s
    window.add_sample(TopSample(130 * S, 100, 1, 101, 1))  # sampling since 130 s
    window.add_trade(TradeTick(140 * S, 100, 1, BUY))

    assert window.coverage(100 * S, 160 * S) == (60 * S, 30 * S)
    assert window.coverage(150 * S, 160 * S) == (10 * S, 10 * S)
    assert window.coverage(0, 90 * S) == (0, 0)  # before it saw anything
    minute = compute_metrics(window, BOOK, window_s=60, now_ns=160 * S, params=FLOW_PARAMS)
    assert (minute.is_complete, minute.as_json()["coverage_s"]) == (False, {"trades": "60.000", "samples": "30.000"})
    ten = compute_metrics(window, BOOK, window_s=10, now_ns=160 * S, params=FLOW_PARAMS).as_json()
    assert (ten["complete"], ten["coverage_s"]) == (True, {"trades": "10.000", "samples": "10.000"})


def test_a_window_without_an_owners_word_covers_trades_from_the_earliest_one() -> None:
    window = MarketWindow(SCALE, KEEP_NS)
    window.add_trade(TradeTick(50 * S, 100, 1, SELL))
    window.add_trade(TradeTick(45 * S, 100, 1, BUY))  # late, and earlier: the earliest counts, whatever the order
    assert window.coverage(40 * S, 60 * S) == (15 * S, 0)
