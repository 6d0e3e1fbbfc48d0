"""Trading fees: basis points of notional, rounded toward +infinity at a fixed scale (never a float)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, localcontext

BPS = Decimal(10_000)
# The scale of every Decimal column of the orders app (decimal_places=12): a fee computed here is stored
# exactly as computed, with no second rounding in the database.
FEE_PLACES = 12
_FEE_PRECISION = 80  # digits: any product of two 28-digit column values, at FEE_PLACES


def fee_for(notional: Decimal, fee_bps: Decimal, *, places: int = FEE_PLACES) -> Decimal:
    """`fee_bps` basis points of `notional`, rounded toward +infinity at `places` decimals.

    Ceiling, not half-even: the platform never charges less than its rate, and a negative (rebate) rate
    never pays out more than its rate. Both errors are below one unit of the last place.
    """
    if notional < 0:
        raise ValueError("notional must not be negative")
    # quantize fails (InvalidOperation) when the result needs more digits than the context holds: a 16-digit
    # price times a 16-digit quantity at 12 places needs 44. Such an order is then refused for its balance.
    with localcontext() as ctx:
        ctx.prec = _FEE_PRECISION
        return (notional * Decimal(fee_bps) / BPS).quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING)
