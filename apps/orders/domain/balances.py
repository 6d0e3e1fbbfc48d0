"""Paper balance arithmetic: what placing, filling and ending an order does to available and locked funds.

An order locks `validation.required_funds` at placement. A fill spends from that lock (a buy: quote for
price x quantity + fee; a sell: base quantity) and credits the other currency; when the order ends, what
is left of its lock goes back to available. Pure: the service applies the changes in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .types import Side

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Funds:
    available: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """Add these to the customer's balance in `currency` (negative: take away)."""

    currency: str
    available_delta: Decimal
    locked_delta: Decimal


class InsufficientFunds(Exception):
    code = "insufficient_balance"


def lock(funds: Funds, amount: Decimal) -> Funds:
    """Move `amount` from available to locked, or InsufficientFunds."""
    if amount < 0:
        raise ValueError("cannot lock a negative amount")
    if funds.available < amount:
        raise InsufficientFunds(f"{amount} needed, {funds.available} available")
    return Funds(available=funds.available - amount, locked=funds.locked + amount)


def apply(funds: Funds, change: BalanceChange) -> Funds:
    return Funds(available=funds.available + change.available_delta, locked=funds.locked + change.locked_delta)


def settle_fill(
    side: Side, *, base: str, quote: str, price: Decimal, quantity: Decimal, fee: Decimal, lock_left: Decimal
) -> tuple[BalanceChange, BalanceChange]:
    """The two changes one fill makes; `lock_left` is what remains of this order's own lock.

    A buy's fees are charged per fill, each rounded up, so in the worst case (every fill at the limit,
    maker rate = taker rate) they can exceed the lock's single rounded fee by 1e-12 per fill: that sliver
    is taken from available rather than driving the lock negative.
    """
    notional = price * quantity
    if side is Side.BUY:
        cost = notional + fee
        from_lock = min(cost, max(lock_left, ZERO))
        return (
            BalanceChange(quote, available_delta=from_lock - cost, locked_delta=-from_lock),
            BalanceChange(base, available_delta=quantity, locked_delta=ZERO),
        )
    from_lock = min(quantity, max(lock_left, ZERO))
    return (
        BalanceChange(base, available_delta=from_lock - quantity, locked_delta=-from_lock),
        BalanceChange(quote, available_delta=notional - fee, locked_delta=ZERO),
    )


def spent_from_lock(side: Side, *, price: Decimal, quantity: Decimal, fee: Decimal, lock_left: Decimal) -> Decimal:
    """How much of the order's lock one fill uses (what `settle_fill` takes from locked)."""
    spent = quantity if side is Side.SELL else price * quantity + fee
    return min(spent, max(lock_left, ZERO))


def release(currency: str, lock_left: Decimal) -> BalanceChange:
    """An order ended (filled, canceled, expired, rejected): its unused lock goes back to available."""
    amount = max(lock_left, ZERO)
    return BalanceChange(currency, available_delta=amount, locked_delta=-amount)
