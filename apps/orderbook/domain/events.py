"""What flows out of connectors and through the bus: book changes, published book events, trades."""

from __future__ import annotations

from dataclasses import dataclass

from .book import Level

SNAPSHOT = "snapshot"
DELTA = "delta"
STALE = "stale"


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One instrument as a connector sees it: our symbol, the venue's, and the fixed-point exponents."""

    symbol: str  # ours: "BTC-USDT"
    venue_symbol: str  # the venue's: "BTCUSDT", "BTC-USDT", "XBT/USD"
    price_exp: int
    size_exp: int


# The hot-path records are slotted but not frozen: a frozen dataclass costs ~4x to build (BENCHMARKS.md).
@dataclass(slots=True)
class BookChange:
    """A verified change to one venue book. With `is_reset` the levels are the whole book."""

    venue: str
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    is_reset: bool
    exchange_ts_ns: int | None
    receive_ts_ns: int
    venue_seq: int | None = None  # the venue's own id (Binance u, OKX seqId), for cross-checks


@dataclass(frozen=True, slots=True)
class BookStale:
    """A venue book can no longer be trusted: nothing more is published until it is reset."""

    venue: str
    symbol: str
    reason: str
    receive_ts_ns: int


@dataclass(frozen=True, slots=True)
class Trade:
    venue: str
    symbol: str
    trade_id: str
    price: int  # units at the instrument's price exponent
    qty: int  # units at the instrument's size exponent
    aggressor: str  # "buy" (buyer took liquidity) or "sell"
    exchange_ts_ns: int | None
    receive_ts_ns: int


@dataclass(slots=True)
class BookEvent:
    """A published event of one book (`binance:BTC-USDT` or `consolidated:BTC-USDT`), gap-free by `seq`."""

    book: str
    seq: int
    kind: str  # SNAPSHOT (a reset: levels are the whole book), DELTA (changed levels, qty 0 = removed), STALE
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    price_exp: int
    size_exp: int
    exchange_ts_ns: int | None
    receive_ts_ns: int
    publish_ts_ns: int
    reason: str = ""


def book_id(venue: str, symbol: str) -> str:
    return f"{venue}:{symbol}"
