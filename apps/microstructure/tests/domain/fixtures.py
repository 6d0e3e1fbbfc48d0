"""Small hand-made inputs for the metric tests: a three-level book and a ten-second window (Scale 2, 1).

Prices have two decimals (100.05 = 10005 units), sizes one (1.5 = 15 units), so every expected value in
the tests can be worked out by hand from the numbers below.
"""

from __future__ import annotations

from decimal import Decimal

from apps.microstructure.domain.metrics import MetricsParams, MetricsResult, compute_metrics
from apps.microstructure.domain.types import BUY, SELL, BookLevels, Scale, TopSample, TradeTick
from apps.microstructure.domain.window import MarketWindow

SCALE = Scale(price_exp=2, size_exp=1)
S = 1_000_000_000  # one second in ns
KEEP_NS = 310 * S

# bids 100.00 x 2.0, 99.90 x 3.0, 99.50 x 5.0; asks 100.10 x 1.0, 100.20 x 4.0, 101.00 x 10.0
BOOK = BookLevels(
    ts_ns=10 * S,
    bids=((10000, 20), (9990, 30), (9950, 50)),
    asks=((10010, 10), (10020, 40), (10100, 100)),
)
BOOK_PARAMS = MetricsParams(
    depth_levels=3, bands_bps=(10, 50, 100), impact_sizes=(Decimal("0.5"), Decimal("3"), Decimal("20"))
)

# Samples every 2 s: (ts, bid, bid qty, ask, ask qty); mids 100.05, 100.05, 100.15, 100.05, 100.15, 100.05.
SAMPLES = (
    TopSample(0 * S, 10000, 20, 10010, 10),
    TopSample(2 * S, 10000, 30, 10010, 10),
    TopSample(4 * S, 10010, 10, 10020, 20),
    TopSample(6 * S, 10000, 40, 10010, 20),
    TopSample(8 * S, 10000, 40, 10030, 10),
    TopSample(10 * S, 10000, 40, 10010, 10),
)
# 100.10 x 1.0 buy at 1 s, 100.00 x 2.0 sell at 3 s, 100.20 x 0.5 buy at 5 s, 100.05 x 1.0 (no side) at 9 s.
TRADES = (
    TradeTick(1 * S, 10010, 10, BUY),
    TradeTick(3 * S, 10000, 20, SELL),
    TradeTick(5 * S, 10020, 5, BUY),
    TradeTick(9 * S, 10005, 10, ""),
)
FLOW_PARAMS = MetricsParams(regression_buckets=5, realised_spread_horizon_s=5)


def filled_window(samples: tuple[TopSample, ...] = SAMPLES, trades: tuple[TradeTick, ...] = TRADES) -> MarketWindow:
    """The window fed in time order, each trade after the samples at or before it."""
    window = MarketWindow(SCALE, KEEP_NS)
    events = sorted([(s.ts_ns, 0, s) for s in samples] + [(t.ts_ns, 1, t) for t in trades], key=lambda e: e[:2])
    for _, _, item in events:
        if isinstance(item, TopSample):
            window.add_sample(item)
        else:
            window.add_trade(item)
    return window


def flow_result(window: MarketWindow | None = None, *, now_ns: int = 10 * S, window_s: int = 10) -> MetricsResult:
    return compute_metrics(window or filled_window(), BOOK, window_s=window_s, now_ns=now_ns, params=FLOW_PARAMS)


def bps(num: Decimal | int, den: Decimal | int) -> Decimal:
    """num / den in bps, rounded to the 1e-6 bps the metrics report."""
    return (Decimal(num) * 10_000 / Decimal(den)).quantize(Decimal("0.000001"))
