"""Fees (basis points, rounded up at 12 places) and the paper balance arithmetic of a lock, a fill, a release."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.orders.domain.balances import (
    BalanceChange,
    Funds,
    InsufficientFunds,
    apply,
    lock,
    release,
    settle_fill,
    spent_from_lock,
)
from apps.orders.domain.fees import fee_for
from apps.orders.domain.types import Side

D = Decimal


def test_fee_is_basis_points_of_notional() -> None:
    assert fee_for(D("30000"), D("10")) == D("30")
    assert fee_for(D("1000"), D("2.5")) == D("0.25")


def test_fee_is_rounded_up_at_twelve_places() -> None:
    fee = fee_for(D("0.000000000001"), D("1"))  # 1e-16 exactly
    assert fee == D("0.000000000001")
    assert fee.as_tuple().exponent == -12


def test_exact_fee_is_not_rounded() -> None:
    assert fee_for(D("123.456"), D("7")) == D("0.0864192")


def test_rebate_is_rounded_toward_zero_so_never_overpaid() -> None:
    assert fee_for(D("100"), D("-2.5")) == D("-0.025")
    assert fee_for(D("0.0000001"), D("-0.0001")) == D("0")  # -1e-15 rounds up to 0


def test_zero_rate_or_zero_notional_costs_nothing() -> None:
    assert fee_for(D("0"), D("10")) == 0
    assert fee_for(D("500"), D("0")) == 0


def test_negative_notional_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        fee_for(D("-1"), D("10"))


def test_fee_on_the_largest_notional_the_columns_allow_is_exact() -> None:
    # 16-digit price x 16-digit quantity: 44 digits at 12 places, beyond the default 28-digit context.
    notional = D("9999999999999999") * D("9999999999999999")
    assert fee_for(notional, D("10")) == notional / 1000


def test_fee_never_returns_a_float() -> None:
    assert type(fee_for(D("1"), D("1"))) is Decimal


def test_lock_moves_available_to_locked() -> None:
    assert lock(Funds(D("100"), D("5")), D("30")) == Funds(D("70"), D("35"))


def test_lock_beyond_available_is_insufficient() -> None:
    with pytest.raises(InsufficientFunds) as info:
        lock(Funds(D("10"), D("0")), D("10.01"))
    assert info.value.code == "insufficient_balance"


def test_buy_fill_spends_quote_from_the_lock_and_credits_base() -> None:
    quote, base = settle_fill(
        Side.BUY, base="BTC", quote="USDT", price=D("100"), quantity=D("2"), fee=D("0.2"), lock_left=D("300")
    )
    assert quote == BalanceChange("USDT", available_delta=D("0"), locked_delta=D("-200.2"))
    assert base == BalanceChange("BTC", available_delta=D("2"), locked_delta=D("0"))


def test_buy_fill_beyond_its_lock_takes_the_sliver_from_available() -> None:
    quote, _ = settle_fill(
        Side.BUY, base="BTC", quote="USDT", price=D("100"), quantity=D("1"), fee=D("0.1"), lock_left=D("100.05")
    )
    assert quote == BalanceChange("USDT", available_delta=D("-0.05"), locked_delta=D("-100.05"))
    assert spent_from_lock(Side.BUY, price=D("100"), quantity=D("1"), fee=D("0.1"), lock_left=D("100.05")) == D(
        "100.05"
    )


def test_sell_fill_spends_base_and_credits_proceeds_less_fee() -> None:
    base, quote = settle_fill(
        Side.SELL, base="BTC", quote="USDT", price=D("100"), quantity=D("2"), fee=D("0.2"), lock_left=D("2")
    )
    assert base == BalanceChange("BTC", available_delta=D("0"), locked_delta=D("-2"))
    assert quote == BalanceChange("USDT", available_delta=D("199.8"), locked_delta=D("0"))


def test_order_lifecycle_conserves_funds() -> None:
    # alice locks 300.3 for a buy of 3 at 100 (10 bps), fills 1 at 99, then cancels the rest.
    usdt = lock(Funds(D("1000"), D("0")), D("300.3"))
    fee = fee_for(D("99"), D("10"))
    quote, _ = settle_fill(
        Side.BUY, base="BTC", quote="USDT", price=D("99"), quantity=D("1"), fee=fee, lock_left=D("300.3")
    )
    usdt = apply(usdt, quote)
    left = D("300.3") - spent_from_lock(Side.BUY, price=D("99"), quantity=D("1"), fee=fee, lock_left=D("300.3"))
    usdt = apply(usdt, release("USDT", left))
    assert usdt == Funds(D("1000") - D("99") - fee, D("0"))


def test_release_of_nothing_left_changes_nothing() -> None:
    assert release("USDT", D("-0.000000000001")) == BalanceChange("USDT", D("0"), D("0"))
