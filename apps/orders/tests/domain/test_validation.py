"""Order validation: each rule with its reason code, the order the rules run in, and funds to lock."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from apps.orders.domain.types import OrderRequest, OrderType, Reason, Side, TimeInForce
from apps.orders.domain.validation import (
    RULE_ORDER,
    InstrumentRules,
    check_order,
    is_on_grid,
    is_within_band,
    protection_price,
    required_funds,
)

D = Decimal
BTC = InstrumentRules(
    symbol="BTC-USDT",
    base="BTC",
    quote="USDT",
    tick_size=D("0.01"),
    lot_size=D("0.0001"),
    min_notional=D("10"),
    price_band_bps=500,  # 5%
    is_trading=True,
)
VENUES = frozenset({"paper", "binance"})
MID = D("30000")


def limit(price: str | None = "30000", quantity: str = "0.01", **changes: object) -> OrderRequest:
    request = OrderRequest(
        client_order_id="alice-1",
        symbol="BTC-USDT",
        venue="paper",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=D(quantity),
        price=None if price is None else D(price),
    )
    return replace(request, **changes)


def market(quantity: str = "0.01", **changes: object) -> OrderRequest:
    request = limit(price=None, quantity=quantity, type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
    return replace(request, **changes)


def check(request: OrderRequest, rules: InstrumentRules | None = BTC, mid: Decimal | None = MID) -> Reason | None:
    return check_order(request, rules, mid=mid, venues=VENUES)


def test_valid_limit_order_passes() -> None:
    assert check(limit()) is None


def test_valid_market_order_passes() -> None:
    assert check(market()) is None


def test_unknown_instrument_is_refused() -> None:
    assert check(limit(), rules=None) is Reason.UNKNOWN_INSTRUMENT


def test_instrument_not_trading_is_refused() -> None:
    assert check(limit(), rules=replace(BTC, is_trading=False)) is Reason.INSTRUMENT_NOT_TRADING


def test_unknown_venue_is_refused() -> None:
    assert check(limit(venue="kraken")) is Reason.UNKNOWN_VENUE


def test_live_venue_with_an_adapter_is_accepted() -> None:
    assert check(limit(venue="binance")) is None


@pytest.mark.parametrize("quantity", ["0", "-0.01", "NaN", "Infinity"])
def test_quantity_not_positive_is_refused(quantity: str) -> None:
    assert check(limit(quantity=quantity)) is Reason.INVALID_QUANTITY


def test_quantity_off_the_lot_grid_is_refused() -> None:
    assert check(limit(quantity="0.01005")) is Reason.QUANTITY_OFF_GRID


def test_quantity_on_the_grid_with_trailing_zeros_passes() -> None:
    assert check(limit(quantity="0.010000000")) is None


def test_market_post_only_is_refused() -> None:
    assert check(market(time_in_force=TimeInForce.POST_ONLY)) is Reason.INVALID_TIME_IN_FORCE


def test_market_order_with_a_price_is_refused() -> None:
    assert check(market(price=D("30000"))) is Reason.PRICE_NOT_ALLOWED


def test_limit_order_without_a_price_is_refused() -> None:
    assert check(limit(price=None)) is Reason.PRICE_REQUIRED


@pytest.mark.parametrize("price", ["0", "-1", "NaN", "-Infinity"])
def test_limit_price_not_positive_is_refused(price: str) -> None:
    assert check(limit(price=price)) is Reason.INVALID_PRICE


def test_price_off_the_tick_grid_is_refused() -> None:
    assert check(limit(price="30000.005")) is Reason.PRICE_OFF_GRID


def test_market_order_without_a_mid_is_refused() -> None:
    assert check(market(), mid=None) is Reason.NO_MARKET


def test_limit_order_without_a_mid_is_refused_fail_closed() -> None:
    assert check(limit(), mid=None) is Reason.NO_MARKET


def test_limit_below_min_notional_is_refused() -> None:
    # 30000 x 0.0003 = 9 < 10
    assert check(limit(quantity="0.0003")) is Reason.BELOW_MIN_NOTIONAL


def test_limit_exactly_at_min_notional_passes() -> None:
    assert check(limit(price="25000", quantity="0.0004"), mid=D("25000")) is None  # 10.0000


def test_market_min_notional_is_priced_at_mid() -> None:
    assert check(market(quantity="0.0003")) is Reason.BELOW_MIN_NOTIONAL  # 9 at mid
    assert check(market(quantity="0.0003"), mid=D("40000")) is None  # 12 at mid


def test_limit_far_from_mid_is_refused_as_fat_finger() -> None:
    assert check(limit(price="31500.01")) is Reason.PRICE_OUTSIDE_BAND
    assert check(limit(price="28499.99")) is Reason.PRICE_OUTSIDE_BAND


def test_limit_exactly_at_the_band_edge_passes() -> None:
    assert check(limit(price="31500.00")) is None
    assert check(limit(price="28500", side=Side.SELL)) is None


def test_market_order_skips_the_band() -> None:
    no_band = replace(BTC, price_band_bps=0)
    assert check(limit(price="30000.01"), rules=no_band) is Reason.PRICE_OUTSIDE_BAND
    assert check(market(), rules=no_band) is None


def test_first_failing_rule_wins_in_the_documented_order() -> None:
    # Wrong on every count: identity problems are reported before shape, shape before market.
    bad = limit(price="-1", quantity="-1", venue="kraken")
    assert check(bad, rules=None, mid=None) is Reason.UNKNOWN_INSTRUMENT
    assert check(bad, rules=replace(BTC, is_trading=False), mid=None) is Reason.INSTRUMENT_NOT_TRADING
    assert check(bad, mid=None) is Reason.UNKNOWN_VENUE
    assert check(replace(bad, venue="paper"), mid=None) is Reason.INVALID_QUANTITY
    off_grid = limit(price="30000.001", quantity="0.00001")
    assert check(off_grid, mid=None) is Reason.QUANTITY_OFF_GRID
    assert check(replace(off_grid, quantity=D("0.0001")), mid=None) is Reason.PRICE_OFF_GRID
    assert check(limit(quantity="0.0001"), mid=None) is Reason.NO_MARKET
    assert check(limit(price="40000", quantity="0.0001")) is Reason.BELOW_MIN_NOTIONAL


def test_rule_order_lists_each_reason_once() -> None:
    assert len(set(RULE_ORDER)) == len(RULE_ORDER) == 13
    assert RULE_ORDER[0] is Reason.UNKNOWN_INSTRUMENT
    assert RULE_ORDER[-1] is Reason.PRICE_OUTSIDE_BAND


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("0.1", "0.01", True),
        ("0.105", "0.01", False),
        ("123456789012345.67", "0.01", True),
        ("100000000000000000000", "0.000000000001", True),
        ("5", "2.5", True),
        ("5", "3", False),
    ],
)
def test_grid_check_is_exact(value: str, step: str, expected: bool) -> None:
    assert is_on_grid(D(value), D(step)) is expected


def test_grid_step_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        is_on_grid(D("1"), D("0"))


def test_band_is_symmetric_around_mid() -> None:
    assert is_within_band(D("105"), D("100"), 500)
    assert is_within_band(D("95"), D("100"), 500)
    assert not is_within_band(D("105.01"), D("100"), 500)
    assert not is_within_band(D("94.99"), D("100"), 500)


def test_protection_price_is_the_band_rounded_outward_to_the_tick() -> None:
    assert protection_price(Side.BUY, D("30000.03"), BTC) == D("31500.04")  # 31500.0315 up
    assert protection_price(Side.SELL, D("30000.03"), BTC) == D("28500.02")  # 28500.0285 down


def test_sell_protection_price_stays_positive_with_a_huge_band() -> None:
    assert protection_price(Side.SELL, D("1"), replace(BTC, price_band_bps=20_000)) == D("0.01")


def test_limit_buy_locks_quote_with_the_taker_fee() -> None:
    currency, amount = required_funds(limit(quantity="0.5"), BTC, reference_price=MID, taker_fee_bps=D("10"))
    assert (currency, amount) == ("USDT", D("15000") + D("15"))


def test_market_buy_locks_quote_at_the_protection_price() -> None:
    currency, amount = required_funds(market(quantity="1"), BTC, reference_price=MID, taker_fee_bps=D("0"))
    assert (currency, amount) == ("USDT", D("31500.00"))


def test_sell_locks_its_base_quantity() -> None:
    currency, amount = required_funds(
        market(quantity="0.25", side=Side.SELL), BTC, reference_price=MID, taker_fee_bps=D("10")
    )
    assert (currency, amount) == ("BTC", D("0.25"))


def test_rebate_rate_does_not_lower_the_lock() -> None:
    _, amount = required_funds(limit(quantity="1"), BTC, reference_price=MID, taker_fee_bps=D("-2"))
    assert amount == D("30000")
