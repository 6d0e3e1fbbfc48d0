"""Order validation: the rules an order must pass before any balance is locked, each with a reason code.

`check_order` returns the first rule that fails, in the order of `RULE_ORDER` (documented in
docs/paper-engine.md). Balances are checked later by the service, with `required_funds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext

from .fees import BPS, fee_for
from .types import OrderRequest, OrderType, Reason, Side, TimeInForce

# Enough digits that a remainder on a fine grid is exact for any 28-digit value.
_GRID_PRECISION = 80

RULE_ORDER: tuple[Reason, ...] = (
    Reason.UNKNOWN_INSTRUMENT,
    Reason.INSTRUMENT_NOT_TRADING,
    Reason.UNKNOWN_VENUE,
    Reason.INVALID_QUANTITY,
    Reason.QUANTITY_OFF_GRID,
    Reason.INVALID_TIME_IN_FORCE,
    Reason.PRICE_NOT_ALLOWED,
    Reason.PRICE_REQUIRED,
    Reason.INVALID_PRICE,
    Reason.PRICE_OFF_GRID,
    Reason.NO_MARKET,
    Reason.BELOW_MIN_NOTIONAL,
    Reason.PRICE_OUTSIDE_BAND,
)


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    symbol: str  # "BTC-USDT"
    base: str
    quote: str
    tick_size: Decimal  # a price must be a whole multiple of it
    lot_size: Decimal  # a quantity must be a whole multiple of it
    min_notional: Decimal  # in the quote currency
    price_band_bps: int  # the fat-finger band around mid; also the market orders' slippage cap
    is_trading: bool


def is_on_grid(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole multiple of `step` (exactly, in Decimal)."""
    if step <= 0:
        raise ValueError("a grid step must be positive")
    with localcontext() as ctx:
        ctx.prec = _GRID_PRECISION
        try:
            return value % step == 0
        except InvalidOperation:
            return False


def check_order(
    request: OrderRequest, rules: InstrumentRules | None, *, mid: Decimal | None, venues: frozenset[str]
) -> Reason | None:
    """The first rule `request` fails, or None when it may be placed. `mid` is None without a trusted book."""
    if rules is None:
        return Reason.UNKNOWN_INSTRUMENT
    if not rules.is_trading:
        return Reason.INSTRUMENT_NOT_TRADING
    if request.venue not in venues:
        return Reason.UNKNOWN_VENUE
    return _check_quantity(request, rules) or _check_price(request, rules) or _check_market(request, rules, mid)


def _check_quantity(request: OrderRequest, rules: InstrumentRules) -> Reason | None:
    quantity = request.quantity
    if not quantity.is_finite() or quantity <= 0:
        return Reason.INVALID_QUANTITY
    if not is_on_grid(quantity, rules.lot_size):
        return Reason.QUANTITY_OFF_GRID
    return None


def _check_price(request: OrderRequest, rules: InstrumentRules) -> Reason | None:
    if request.type is OrderType.MARKET:
        if request.time_in_force is TimeInForce.POST_ONLY:
            return Reason.INVALID_TIME_IN_FORCE
        return Reason.PRICE_NOT_ALLOWED if request.price is not None else None
    price = request.price
    if price is None:
        return Reason.PRICE_REQUIRED
    if not price.is_finite() or price <= 0:
        return Reason.INVALID_PRICE
    if not is_on_grid(price, rules.tick_size):
        return Reason.PRICE_OFF_GRID
    return None


def _check_market(request: OrderRequest, rules: InstrumentRules, mid: Decimal | None) -> Reason | None:
    # Fail closed for limit orders too: without a trusted mid the fat-finger band cannot be checked.
    if mid is None or mid <= 0:
        return Reason.NO_MARKET
    reference = mid if request.price is None else request.price
    if reference * request.quantity < rules.min_notional:
        return Reason.BELOW_MIN_NOTIONAL
    if request.price is not None and not is_within_band(request.price, mid, rules.price_band_bps):
        return Reason.PRICE_OUTSIDE_BAND
    return None


def is_within_band(price: Decimal, mid: Decimal, band_bps: int) -> bool:
    """|price - mid| / mid <= band_bps / 10000, compared without dividing (so exactly)."""
    return abs(price - mid) * BPS <= band_bps * mid


def protection_price(side: Side, reference_price: Decimal, rules: InstrumentRules) -> Decimal:
    """The worst price a market order may walk to: the band around `reference_price`, on the tick grid.

    The engine gives a market order this as its `price`, so a walk never spends more than was locked.
    """
    offset = reference_price * rules.price_band_bps / BPS
    if side is Side.BUY:
        return _to_grid(reference_price + offset, rules.tick_size, ROUND_CEILING)
    return max(rules.tick_size, _to_grid(reference_price - offset, rules.tick_size, ROUND_FLOOR))


def _to_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


def required_funds(
    request: OrderRequest, rules: InstrumentRules, *, reference_price: Decimal, taker_fee_bps: Decimal
) -> tuple[str, Decimal]:
    """(currency, amount) to lock at placement: enough for the worst fill the order can get, fee included.

    A sell locks its base quantity (its fee is taken from the quote proceeds). A buy locks quote for its
    whole quantity at its limit (market: at `protection_price`), plus the taker fee on that, since any
    order may take liquidity.
    """
    if request.side is Side.SELL:
        return rules.base, request.quantity
    price = request.price if request.price is not None else protection_price(Side.BUY, reference_price, rules)
    notional = price * request.quantity
    return rules.quote, notional + max(Decimal(0), fee_for(notional, taker_fee_bps))
