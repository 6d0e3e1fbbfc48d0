"""Book-state metrics against values worked out by hand on the three-level book of `fixtures.BOOK`."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.microstructure.domain.metrics import MetricsParams, MetricsResult, compute_metrics
from apps.microstructure.domain.types import BookLevels
from apps.microstructure.domain.window import MarketWindow

from .fixtures import BOOK, BOOK_PARAMS, KEEP_NS, SCALE, S, bps

D = Decimal


def book_result(book: BookLevels | None = BOOK, params: MetricsParams = BOOK_PARAMS) -> MetricsResult:
    return compute_metrics(MarketWindow(SCALE, KEEP_NS), book, window_s=10, now_ns=10 * S, params=params)


def value(name: str, book: BookLevels | None = BOOK) -> object:
    return book_result(book).metrics[name].value


def test_touch_spread_and_mid_of_a_two_sided_book() -> None:
    metrics = book_result().metrics
    assert metrics["best_bid_price"].value == D("100.00")
    assert metrics["best_ask_price"].value == D("100.10")
    assert metrics["spread_price"].value == D("0.10")  # 100.10 - 100.00
    assert metrics["mid_price"].value == D("100.05")  # (100.00 + 100.10) / 2
    assert metrics["spread_bps"].value == D("9.995002")  # 0.10 / 100.05 * 1e4 = 9.99500249...
    assert metrics["spread_bps"].inputs == 2


def test_microprice_weights_each_touch_by_the_opposite_queue() -> None:
    # (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty) = (100.00 * 1.0 + 100.10 * 2.0) / 3.0
    # = 300.20 / 3 = 100.0666666..., reported to 2 + 6 decimals.
    assert value("microprice") == D("100.06666667")


def test_depth_weighted_mid_uses_the_side_vwaps_of_the_top_levels() -> None:
    # VWAP bid = (100.00*2 + 99.90*3 + 99.50*5) / 10 = 997.2 / 10 = 99.72 (Q_bid = 10)
    # VWAP ask = (100.10*1 + 100.20*4 + 101.00*10) / 15 = 1510.9 / 15 = 100.7266... (Q_ask = 15)
    # (99.72 * 15 + 100.72666... * 10) / 25 = (1495.8 + 1007.2666...) / 25 = 100.1226666...
    metric = book_result().metrics["depth_weighted_mid_price"]
    assert metric.value == D("100.12266667")
    assert metric.inputs == 6


def test_depth_over_the_top_n_levels_per_side() -> None:
    params = MetricsParams(depth_levels=2)
    metrics = book_result(params=params).metrics
    assert metrics["depth_bid_top_n_base"].value == D("5.0")  # 2.0 + 3.0
    assert metrics["depth_ask_top_n_base"].value == D("5.0")  # 1.0 + 4.0
    assert metrics["depth_bid_top_n_base"].inputs == 2
    assert book_result().metrics["depth_ask_top_n_base"].value == D("15.0")  # 1 + 4 + 10 with N = 3


def test_depth_within_bands_of_the_mid() -> None:
    metrics = book_result().metrics
    # mid 100.05. Asks within +10 bps: p <= 100.05 * 1.001 = 100.15005 → 100.10 (1.0);
    # +50 bps: p <= 100.55025 → 100.10, 100.20 (5.0); +100 bps: p <= 101.0505 → all three (15.0).
    assert metrics["depth_ask_within_bps"].value == {"10": D("1.0"), "50": D("5.0"), "100": D("15.0")}
    # Bids within -10 bps: p >= 99.94995 → 100.00 (2.0); -50: p >= 99.54975 → 100.00, 99.90 (5.0);
    # -100: p >= 99.0495 → all three (10.0).
    assert metrics["depth_bid_within_bps"].value == {"10": D("2.0"), "50": D("5.0"), "100": D("10.0")}
    assert metrics["depth_bid_within_bps"].inputs == 3


def test_depth_band_edge_is_inclusive() -> None:
    # mid 100.00 (99.95 / 100.05); +10 bps is exactly 100.10, so an ask at 100.10 is inside the band.
    book = BookLevels(0, ((9995, 10),), ((10005, 10), (10010, 30), (10011, 50)))
    assert book_result(book).metrics["depth_ask_within_bps"].value == {"10": D("4.0"), "50": D("9.0"), "100": D("9.0")}


def test_book_imbalance_over_the_top_n_levels() -> None:
    # (Q_bid - Q_ask) / (Q_bid + Q_ask) = (10 - 15) / 25 = -0.2
    assert value("book_imbalance") == D("-0.2")


def test_impact_and_slippage_of_a_buy_walk_the_asks() -> None:
    metrics = book_result().metrics
    impact, slippage = metrics["price_impact_bps"].value, metrics["slippage_bps"].value
    assert isinstance(impact, dict)
    assert isinstance(slippage, dict)
    # 0.5: all at 100.10; worst and average 100.10, (100.10 - 100.05) / 100.05 = 4.9975012... bps.
    assert impact["buy"]["0.5"] == slippage["buy"]["0.5"] == bps(D("0.05"), D("100.05"))
    # 3: 1.0 @ 100.10 + 2.0 @ 100.20; worst 100.20 → 0.15 / 100.05; average 300.5 / 3 = 100.1666...
    assert impact["buy"]["3"] == bps(D("0.15"), D("100.05")) == D("14.992504")
    assert slippage["buy"]["3"] == bps(D("300.5") / 3 - D("100.05"), D("100.05")) == D("11.660836")
    # 20: the whole side, 15.0, fills; worst 101.00, average 1510.9 / 15; 5.0 is left unfilled.
    assert impact["buy"]["20"] == bps(D("0.95"), D("100.05")) == D("94.952524")
    assert slippage["buy"]["20"] == D("67.632850")  # (100.7266666 - 100.05) / 100.05 * 1e4
    assert metrics["impact_unfilled_base"].value == {
        "buy": {"0.5": D("0.0"), "3": D("0.0"), "20": D("5.0")},
        "sell": {"0.5": D("0.0"), "3": D("0.0"), "20": D("10.0")},
    }


def test_impact_and_slippage_of_a_sell_walk_the_bids() -> None:
    metrics = book_result().metrics
    impact, slippage = metrics["price_impact_bps"].value, metrics["slippage_bps"].value
    assert isinstance(impact, dict)
    assert isinstance(slippage, dict)
    assert impact["sell"]["0.5"] == slippage["sell"]["0.5"] == D("4.997501")  # 0.05 / 100.05
    # 3: 2.0 @ 100.00 + 1.0 @ 99.90; worst 99.90; average 299.9 / 3 = 99.9666...
    assert impact["sell"]["3"] == bps(D("0.15"), D("100.05"))
    assert slippage["sell"]["3"] == bps(D("100.05") - D("299.9") / 3, D("100.05")) == D("8.329169")
    # 20: only 10.0 of bids; worst 99.50, (100.05 - 99.50) / 100.05; average 997.2 / 10 = 99.72.
    assert impact["sell"]["20"] == bps(D("0.55"), D("100.05"))
    assert slippage["sell"]["20"] == bps(D("0.33"), D("100.05"))


def test_an_impact_size_larger_than_the_book_is_not_extrapolated() -> None:
    # The 20 buy is the 15.0 on offer (5.0 unfilled); a 200 buy must report the same prices, not more.
    params = MetricsParams(depth_levels=3, impact_sizes=(Decimal("20"), Decimal("200")))
    metrics = book_result(params=params).metrics
    impact = metrics["price_impact_bps"].value
    assert isinstance(impact, dict)
    assert impact["buy"]["20"] == impact["buy"]["200"]
    unfilled = metrics["impact_unfilled_base"].value
    assert isinstance(unfilled, dict)
    assert unfilled["buy"]["200"] == D("185.0")


def test_empty_book_side_nulls_the_two_sided_metrics_with_a_reason() -> None:
    book = BookLevels(0, ((10000, 20),), ())
    metrics = book_result(book).metrics
    assert metrics["best_bid_price"].value == D("100.00")
    assert metrics["best_ask_price"].value is None
    assert metrics["best_ask_price"].reason == "no_asks"
    for name in ("spread_bps", "mid_price", "microprice", "price_impact_bps", "depth_ask_within_bps"):
        assert metrics[name].value is None
        assert metrics[name].reason == "one_sided_book"
    assert metrics["depth_ask_top_n_base"].value == D("0")  # an empty side has no depth: a measurement
    assert metrics["book_imbalance"].value == D("1")  # (2.0 - 0) / 2.0


@pytest.mark.parametrize("name", ["spread_bps", "book_imbalance", "depth_bid_top_n_base", "slippage_bps"])
def test_no_book_yet_nulls_every_book_metric(name: str) -> None:
    metric = book_result(None).metrics[name]
    assert metric.value is None
    assert metric.reason == "no_book"


def test_a_null_dict_metric_keeps_its_flattened_names() -> None:
    scalars = book_result(None).scalars()
    assert scalars["depth_bid_within_bps.50"] is None
    assert scalars["price_impact_bps.sell.20"] is None
    assert set(scalars) == set(book_result().scalars())
