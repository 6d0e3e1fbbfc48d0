"""Microstructure fixtures: a fresh live service per test, and a feed that publishes books and trades."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from apps.microstructure.services.live import reset_microstructure
from apps.orderbook.domain.book import Level
from apps.orderbook.domain.events import BookChange, BookStale, Trade
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.services.publisher import FeedPublisher, Precision

S = 1_000_000_000


@pytest.fixture(autouse=True)
def _fresh_microstructure() -> Iterator[None]:
    reset_microstructure()
    yield
    reset_microstructure()


class Feed:
    """One venue's books and trades of some instruments, published into this process's bus (and so its hub).

    Precisions default to the seeded listings: OKX BTC-USDT has 1 price and 8 size decimals, the instrument
    (so its consolidated book) 8 and 8, so trades must be rescaled on their way to the consolidated window.
    """

    def __init__(self, venue: str = "okx", symbol: str = "BTC-USDT", venue_exp: tuple[int, int] = (1, 8)) -> None:
        self.venue, self.symbol = venue, symbol
        get_hub()
        self.publisher = FeedPublisher(
            get_bus(), {(venue, symbol): Precision(*venue_exp)}, {symbol: Precision(8, 8)}, time.time_ns
        )
        self.trades = 0

    def book(self, bids: list[Level], asks: list[Level], *, reset: bool = True, ts_ns: int | None = None) -> None:
        now = time.time_ns() if ts_ns is None else ts_ns
        self.publisher.handle([BookChange(self.venue, self.symbol, tuple(bids), tuple(asks), reset, now, now)])

    def stale(self) -> None:
        self.publisher.handle([BookStale(self.venue, self.symbol, "test", time.time_ns())])

    def trade(self, price: int, qty: int, aggressor: str, ts_ns: int, trade_id: str | None = None) -> Trade:
        self.trades += 1
        trade = Trade(
            self.venue,
            self.symbol,
            str(self.trades) if trade_id is None else trade_id,
            price,
            qty,
            aggressor,
            ts_ns,
            ts_ns,
        )
        self.publisher.handle([trade])
        return trade


@pytest.fixture
def feed() -> Feed:
    return Feed()
