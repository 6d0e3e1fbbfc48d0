"""Exact decimal text ↔ fixed-point integers: `units = value * 10**exponent`, never through float."""

from __future__ import annotations

from decimal import Decimal


class PrecisionError(ValueError):
    """The text has more significant decimals than the instrument's exponent allows, or is no number."""


def to_units(text: str, exponent: int) -> int:
    """`"123.4500"` with exponent 6 → 123450000. Non-negative decimals only; raises PrecisionError if the
    text is not one, or has more significant decimals than `exponent`."""
    whole, dot, frac = text.partition(".")
    if len(frac) == exponent and text.isascii() and whole.isdigit() and (not dot or frac.isdigit()):
        return int(whole + frac)  # the common case: the venue writes exactly our decimals
    if not (text.isascii() and whole.isdigit() and (not dot or frac.isdigit())):
        if text.isascii() and ("e" in text or "E" in text):
            return _to_units_slow(text, exponent)
        raise PrecisionError(f"not a non-negative decimal: {text!r}")
    if len(frac) > exponent:
        if frac[exponent:].strip("0"):
            raise PrecisionError(f"{text!r} has more than {exponent} decimals")
        frac = frac[:exponent]
    return int(whole + frac.ljust(exponent, "0"))


MAX_EXPONENT_NOTATION = 30  # "1e-5" is fine; "1e999999" is an attack on our CPU, not a price


def _to_units_slow(text: str, exponent: int) -> int:
    try:
        parsed = Decimal(text)
        shift = parsed.as_tuple().exponent
        if not isinstance(shift, int) or abs(shift) > MAX_EXPONENT_NOTATION:
            raise PrecisionError(f"exponent out of range: {text!r}")
        value = parsed.scaleb(exponent)
    except ArithmeticError as exc:
        raise PrecisionError(f"not a decimal: {text!r}") from exc
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise PrecisionError(f"{text!r} does not fit {exponent} decimals")
    return int(value)


def from_units(units: int, exponent: int) -> str:
    """Canonical decimal text: 123450000, 6 → "123.45"; trailing zeros dropped, no exponent notation."""
    if exponent == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**exponent)
    frac_text = str(frac).rjust(exponent, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def rescale(units: int, from_exponent: int, to_exponent: int) -> int:
    """Units at one exponent expressed at a finer (or equal) one."""
    if to_exponent < from_exponent:
        raise PrecisionError("rescaling to a coarser exponent would lose precision")
    return units * int(10 ** (to_exponent - from_exponent))


def decimals_of(text: str) -> int:
    """Number of decimals written in `text` ("0.10" → 2)."""
    if "e" in text or "E" in text:
        exponent = Decimal(text).as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else 0
    return len(text.partition(".")[2])
