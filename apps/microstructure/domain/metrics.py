"""The metric set of one book for one window: parameters, the result shape, and `compute_metrics`.

Book-state metrics describe `book` now; flow metrics describe the window [now - window_s, now] of the
`MarketWindow`. Each `Metric` carries its unit and the count of inputs it used, or None and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .book_metrics import BOOK_METRIC_NAMES, book_metrics
from .flow_metrics import FLOW_METRIC_NAMES, NS_PER_S, flow_metrics
from .numbers import decimal_text
from .types import BookLevels, Metric, MetricValue
from .window import MarketWindow

WINDOWS_S = (10, 60, 300)
MILLISECOND = Decimal("0.001")
METRIC_NAMES: tuple[str, ...] = BOOK_METRIC_NAMES + FLOW_METRIC_NAMES


@dataclass(frozen=True)
class MetricsParams:
    depth_levels: int = 10  # top N levels for depth, imbalance and the depth-weighted mid
    bands_bps: tuple[int, ...] = (10, 50, 100)  # depth within ± this many bps of the mid
    impact_sizes: tuple[Decimal, ...] = (Decimal("0.1"), Decimal("1"), Decimal("10"))  # base units
    realised_spread_horizon_s: int = 5  # must equal the window's realised_horizon_ns
    sample_interval_ns: int = 100_000_000  # the service's sampling interval (documentation; see the window)
    regression_buckets: int = 10  # sub-intervals of the window for Kyle's lambda and Amihud


@dataclass(frozen=True)
class MetricsResult:
    window_s: int
    ts_ns: int
    metrics: dict[str, Metric]
    # How much of the window the process saw (it started, or preloaded, less than a window ago): the flow
    # metrics over trades and over top-of-book samples describe only that part.
    trades_covered_ns: int = 0
    samples_covered_ns: int = 0

    @property
    def is_complete(self) -> bool:
        span = self.window_s * NS_PER_S
        return self.trades_covered_ns >= span and self.samples_covered_ns >= span

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: Decimals as decimal strings; each metric as {"value", "unit", "inputs", "reason"}."""
        return {
            "window_s": self.window_s,
            "ts_ns": self.ts_ns,
            "complete": self.is_complete,
            "coverage_s": {"trades": _seconds(self.trades_covered_ns), "samples": _seconds(self.samples_covered_ns)},
            "metrics": {
                name: {"value": _json_value(m.value), "unit": m.unit, "inputs": m.inputs, "reason": m.reason}
                for name, m in self.metrics.items()
            },
        }

    def scalars(self) -> dict[str, Decimal | int | None]:
        """Flattened numbers for storing bars: "spread_bps", "depth_bid_within_bps.10", "slippage_bps.buy.1".

        A null dict-valued metric yields its sub-names (from `Metric.keys`) with None, so the names do not
        depend on whether the input sufficed.
        """
        out: dict[str, Decimal | int | None] = {}
        for name, metric in self.metrics.items():
            if metric.value is None and metric.keys:
                out.update((f"{name}.{key}", None) for key in metric.keys)
            else:
                _flatten(name, metric.value, out)
        return out


def compute_metrics(
    window: MarketWindow, book: BookLevels | None, *, window_s: int, now_ns: int, params: MetricsParams
) -> MetricsResult:
    """Every metric of METRIC_NAMES for one window; `book` is the book now (None before the first one)."""
    return compute_all_windows(window, book, now_ns=now_ns, params=params, windows_s=(window_s,))[window_s]


def compute_all_windows(
    window: MarketWindow,
    book: BookLevels | None,
    *,
    now_ns: int,
    params: MetricsParams,
    windows_s: tuple[int, ...] = WINDOWS_S,
) -> dict[int, MetricsResult]:
    """compute_metrics for several windows at once: the book-state metrics are computed once and shared."""
    if params.realised_spread_horizon_s * NS_PER_S != window.realised_horizon_ns:
        raise ValueError("params.realised_spread_horizon_s differs from the window's realised_horizon_ns")
    if max(windows_s) * NS_PER_S > window.keep_ns:
        raise ValueError(f"a {max(windows_s)} s window is longer than the {window.keep_ns} ns the window keeps")
    book_part = book_metrics(
        book,
        window.scale,
        depth_levels=params.depth_levels,
        bands_bps=params.bands_bps,
        impact_sizes=params.impact_sizes,
    )
    results: dict[int, MetricsResult] = {}
    for window_s in windows_s:
        flow_part = flow_metrics(window, window_s=window_s, now_ns=now_ns, buckets=params.regression_buckets)
        trades_ns, samples_ns = window.coverage(now_ns - window_s * NS_PER_S, now_ns)
        results[window_s] = MetricsResult(window_s, now_ns, {**book_part, **flow_part}, trades_ns, samples_ns)
    return results


def _seconds(ns: int) -> str:
    return decimal_text(Decimal(ns).scaleb(-9).quantize(MILLISECOND))


def _json_value(value: MetricValue) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


def _flatten(name: str, value: MetricValue, out: dict[str, Decimal | int | None]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{name}.{key}", item, out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(f"{name}.{index}", item, out)
    else:
        out[name] = value
