"""The result contract: names in documentation order, JSON with decimal strings, stable flattened scalars."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

from apps.microstructure.domain.metrics import (
    METRIC_NAMES,
    WINDOWS_S,
    MetricsResult,
    compute_all_windows,
    compute_metrics,
)
from apps.microstructure.domain.types import Metric
from apps.microstructure.domain.window import MarketWindow

from .fixtures import BOOK, FLOW_PARAMS, KEEP_NS, SCALE, S, filled_window, flow_result

DOC = Path(__file__).resolve().parents[4] / "docs" / "microstructure.md"


def test_every_result_carries_every_metric_name_in_order() -> None:
    result = flow_result()
    assert tuple(result.metrics) == METRIC_NAMES
    assert len(METRIC_NAMES) >= 18
    assert (result.window_s, result.ts_ns) == (10, 10 * S)


def test_every_metric_is_documented_with_its_formula() -> None:
    text = DOC.read_text()
    missing = [name for name in METRIC_NAMES if f"`{name}`" not in text]
    assert missing == []


def test_json_carries_decimal_strings_and_null_reasons() -> None:
    payload = json.loads(json.dumps(flow_result().as_json()))
    metrics = payload["metrics"]
    assert metrics["spread_bps"] == {"value": "9.995002", "unit": "bps", "inputs": 2, "reason": None}
    assert metrics["trade_count"]["value"] == 4
    assert metrics["depth_bid_within_bps"]["value"] == {"10": "2.0", "50": "5.0", "100": "10.0"}
    empty = compute_metrics(MarketWindow(SCALE, KEEP_NS), None, window_s=60, now_ns=60 * S, params=FLOW_PARAMS)
    assert empty.as_json()["metrics"]["vwap_price"] == {
        "value": None,
        "unit": "price",
        "inputs": 0,
        "reason": "no_trades",
    }


def test_tiny_values_are_written_without_exponent_notation() -> None:
    result = MetricsResult(10, 0, {"kyle_lambda_bps_per_notional": Metric(Decimal("1.5E-9"), "bps_per_quote", 3)})
    assert result.as_json()["metrics"]["kyle_lambda_bps_per_notional"]["value"] == "0.0000000015"
    text = json.dumps(flow_result().as_json())
    assert not re.search(r'"-?\d+(\.\d+)?E[-+]?\d+"', text)


def test_scalars_flatten_nested_values_under_dotted_names() -> None:
    scalars = flow_result().scalars()
    assert scalars["depth_ask_within_bps.50"] == Decimal("5.0")  # 100.10 and 100.20 are within 100.55025
    assert scalars["trade_count"] == 4
    assert scalars["slippage_bps.sell.1"] is not None
    assert all(isinstance(v, (Decimal, int)) or v is None for v in scalars.values())


def test_all_windows_at_once_equal_one_call_per_window() -> None:
    window = filled_window()
    params = FLOW_PARAMS
    together = compute_all_windows(window, BOOK, now_ns=10 * S, params=params)
    assert tuple(together) == WINDOWS_S
    for window_s, result in together.items():
        alone = compute_metrics(window, BOOK, window_s=window_s, now_ns=10 * S, params=params)
        assert result == alone
