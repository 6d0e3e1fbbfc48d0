"""The inputs and outputs of the metric formulas: trades, top-of-book samples, book levels, metric values.

Prices and sizes are integers at the instrument's exponents (`Scale`), as everywhere in the order book;
results are `Decimal` (exact) or `int`, never float. Time is integer nanoseconds, always a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from apps.orderbook.domain.book import Level

BUY = "buy"
SELL = "sell"


@dataclass(frozen=True, slots=True)
class Scale:
    """Fixed-point exponents: a price of `units` means units * 10**-price_exp."""

    price_exp: int
    size_exp: int


@dataclass(frozen=True, slots=True)
class TradeTick:
    ts_ns: int  # the venue's event time, else our receive time
    price: int  # units at Scale.price_exp
    qty: int  # units at Scale.size_exp
    aggressor: str  # BUY (the buyer took liquidity), SELL, or "" when the venue did not say


@dataclass(frozen=True, slots=True)
class TopSample:
    """The top of one book, sampled at a fixed interval (0 price and qty for an empty side)."""

    ts_ns: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int


@dataclass(frozen=True, slots=True)
class BookLevels:
    """A book now: levels best first (bids descending, asks ascending)."""

    ts_ns: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


MetricValue = Decimal | int | dict[str, "MetricValue"] | list["MetricValue"] | None


@dataclass(frozen=True, slots=True)
class Metric:
    """One result: a value with its unit and the count of inputs it used; or None with the reason."""

    value: MetricValue
    unit: str
    inputs: int
    reason: str | None = None  # set exactly when value is None (e.g. "no_trades", "one_sided_book")
    # For a null dict-valued metric: the flattened sub-names it has when not null ("buy.1", "10"), so that
    # `MetricsResult.scalars()` yields the same names whether or not the input sufficed.
    keys: tuple[str, ...] = ()
