"""Exact arithmetic for the metric formulas: fixed-point units to Decimal, one Decimal context, rounding.

Sums are integers; a formula divides (or takes a square root) once, in `CTX`, and rounds its result to a
fixed number of decimal places for its unit, so the same inputs always give the same digits.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow

# 40 digits hold any notional sum we keep (price and size exponents up to 8 each, 1e24 of quote) exactly.
CTX = Context(prec=40, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
SIGNIFICANT = Context(prec=12, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
BPS = 10_000

PLACES_BPS = 6  # 1e-6 bps
PLACES_RATIO = 12  # imbalances, volatility
PLACES_PER_S = 6
EXTRA_PRICE_PLACES = 6  # derived prices (mid, microprice, VWAP) carry this many digits past the tick


def units(value: int, exponent: int) -> Decimal:
    """Fixed-point units as an exact Decimal: (12345, 2) → Decimal("123.45")."""
    return Decimal(value).scaleb(-exponent, CTX)


def to_units_floor(value: Decimal, exponent: int) -> int:
    """A non-negative Decimal in units, rounded down: (Decimal("1.239"), 2) → 123."""
    return int(value.scaleb(exponent, CTX))


def ratio(num: int | Decimal, den: int | Decimal, places: int) -> Decimal:
    """num / den rounded half-even to `places` decimal places (den != 0)."""
    return quantize(CTX.divide(Decimal(num), Decimal(den)), places)


def quantize(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), context=CTX)


def significant(value: Decimal) -> Decimal:
    """Round to 12 significant digits: for tiny coefficients such as Kyle's lambda, whose scale varies."""
    return SIGNIFICANT.plus(value)


def sqrt(value: Decimal) -> Decimal:
    return CTX.sqrt(value)


def decimal_text(value: Decimal) -> str:
    """Plain decimal text, never exponent notation ("0.000000012", not "1.2E-8")."""
    return format(abs(value) if value.is_zero() else value, "f")  # no "-0.000"
