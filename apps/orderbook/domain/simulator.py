"""A simulated Binance spot market per symbol: random limit orders, cancels and market orders around a moving mid.

Pure: time is a parameter and randomness comes from the `random.Random` passed in, so a seed replays the same
stream. The book is kept in integer ticks and size units; every level change takes the next update id, like
Binance's, and the levels changed since the last drain sit in dirty sets, so a diff never scans the book.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from decimal import Decimal
from typing import Any

from .book import BID, Level
from .fixedpoint import to_units

WIRE_DECIMALS = 8  # Binance writes every price and quantity with 8 decimals: "0.35210000"
NEAR_TOP_LEVELS = 10  # most cancels hit the first levels, as on a real book
NEAR_TOP_CANCEL_PROB = 0.7
# With these two, a side settles at about 80% of `levels` price levels (measured; 0.5 / 0.2 thinned it to 45%).
FULL_CANCEL_PROB = 0.25
DEEP_ORDER_PROB = 0.3  # a limit order anywhere in the band rather than near the mid
_FORMAT_CACHE_MAX = 65_536


class _Formatter:
    """Integer units → Binance decimal text at fixed decimals; prices repeat, so their text is cached."""

    __slots__ = ("_cache", "_pad", "_scale", "exp")

    def __init__(self, exp: int) -> None:
        self.exp = exp
        self._scale = 10**exp
        self._pad = "0" * max(WIRE_DECIMALS - exp, 0)
        self._cache: dict[int, str] = {}

    def __call__(self, units: int) -> str:
        text = self._cache.get(units)
        if text is None:
            whole, frac = divmod(units, self._scale)
            text = f"{whole}.{frac:0{self.exp}d}{self._pad}" if self.exp else f"{whole}.{self._pad}"
            if len(self._cache) >= _FORMAT_CACHE_MAX:
                self._cache.clear()
            self._cache[units] = text
        return text


class _Side:
    """One side's price levels: price ticks → aggregate quantity, plus the prices kept sorted ascending.

    Depth is bounded (`max_depth`), so a bisect insert into a plain list beats a balanced tree here.
    """

    __slots__ = ("dirty", "is_bid", "prices", "qty")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.qty: dict[int, int] = {}
        self.prices: list[int] = []
        self.dirty: set[int] = set()

    def __len__(self) -> int:
        return len(self.prices)

    def best(self) -> int:
        return self.prices[-1] if self.is_bid else self.prices[0]

    def worst(self) -> int:
        return self.prices[0] if self.is_bid else self.prices[-1]

    def nth_best(self, index: int) -> int:
        return self.prices[-1 - index] if self.is_bid else self.prices[index]

    def is_worse(self, price: int, than: int) -> bool:
        return price < than if self.is_bid else price > than

    def set(self, price: int, qty: int) -> None:
        """Absolute quantity at a price; 0 removes the level. Callers count the update id."""
        if qty:
            if price not in self.qty:
                insort(self.prices, price)
            self.qty[price] = qty
        elif self.qty.pop(price, None) is not None:
            del self.prices[bisect_left(self.prices, price)]
        self.dirty.add(price)

    def levels(self, limit: int | None = None) -> list[Level]:
        """Best first; all levels when limit is None."""
        count = len(self.prices) if limit is None else min(limit, len(self.prices))
        chosen = self.prices[len(self.prices) - count :][::-1] if self.is_bid else self.prices[:count]
        return [(price, self.qty[price]) for price in chosen]


class SimulatedMarket:
    """One symbol's book and order flow. `step` takes one random action; drains and snapshots speak Binance.

    `mid` is the fair price in ticks: bids rest at or below it, asks above it. It walks one tick at a time,
    and the book follows because orders priced off the new mid cross the stale side and trade.
    """

    def __init__(
        self,
        symbol: str,
        *,
        mid_price: str | Decimal | int,
        tick_size_exp: int = 2,
        size_exp: int = 6,
        rng: random.Random,
        levels: int = 200,
        max_depth: int | None = None,
        first_update_id: int | None = None,
        limit_prob: float = 0.55,
        market_prob: float = 0.1,
        mid_move_prob: float = 0.02,
        mean_qty_units: int | None = None,
    ) -> None:
        if levels < 2:
            raise ValueError("levels must be at least 2")
        if not 0 <= limit_prob + market_prob <= 1:
            raise ValueError("limit_prob + market_prob must be within [0, 1]")
        self.symbol = symbol.upper()
        self.tick_size_exp = tick_size_exp
        self.size_exp = size_exp
        self.levels_band = levels  # new orders rest within this many ticks of the mid
        self.max_depth = max_depth if max_depth is not None else 2 * levels
        self.min_depth = min(NEAR_TOP_LEVELS, levels)
        if self.max_depth < levels:
            raise ValueError("max_depth must be at least levels")
        mid = mid_price if isinstance(mid_price, int) else to_units(str(mid_price), tick_size_exp)
        if mid < levels:
            raise ValueError(f"mid price must be at least {levels} ticks so every bid level stays positive")
        self._mid = mid
        self._rng = rng
        self._limit_prob = limit_prob
        self._market_below = limit_prob + market_prob
        self._mid_move_prob = mid_move_prob
        self._inv_mean_qty = 1.0 / (mean_qty_units or max(10**size_exp // 10, 1))
        self._inv_mean_offset = 1.0 / (levels / 20 + 1)
        self._bids = _Side(is_bid=True)
        self._asks = _Side(is_bid=False)
        self._format_price = _Formatter(tick_size_exp)
        self._format_qty = _Formatter(size_exp)
        self._update_id = first_update_id if first_update_id is not None else rng.randrange(10**9, 10**10)
        self._drained_id = self._update_id
        self._trade_id = rng.randrange(10**8, 10**9)
        for offset in range(levels):
            self._bids.set(mid - offset, self._draw_qty())
            self._asks.set(mid + 1 + offset, self._draw_qty())
        self._bids.dirty.clear()  # the opening book is the state at the first id, not a change
        self._asks.dirty.clear()

    # --- state -----------------------------------------------------------------------------------------

    @property
    def last_update_id(self) -> int:
        return self._update_id

    @property
    def mid_ticks(self) -> int:
        return self._mid

    def levels(self, side: str, limit: int | None = None) -> list[Level]:
        """The book in (price ticks, quantity units), best first."""
        return (self._bids if side == BID else self._asks).levels(limit)

    def depth(self, side: str) -> int:
        return len(self._bids if side == BID else self._asks)

    def top(self) -> tuple[int, int, int, int]:
        """(best bid ticks, its quantity, best ask ticks, its quantity): cheap, for change detection."""
        bid, ask = self._bids.best(), self._asks.best()
        return bid, self._bids.qty[bid], ask, self._asks.qty[ask]

    # --- Binance shapes --------------------------------------------------------------------------------

    def snapshot(self, limit: int) -> dict[str, Any]:
        """`GET /api/v3/depth` body at the current update id."""
        fp, fq = self._format_price, self._format_qty
        return {
            "lastUpdateId": self._update_id,
            "bids": [[fp(p), fq(q)] for p, q in self._bids.levels(limit)],
            "asks": [[fp(p), fq(q)] for p, q in self._asks.levels(limit)],
        }

    def drain_depth_update(self, now_ms: int) -> dict[str, Any] | None:
        """The `depthUpdate` for every id since the last drain: final absolute quantity of each changed level."""
        if self._update_id == self._drained_id:
            return None
        first, self._drained_id = self._drained_id + 1, self._update_id
        event = {
            "e": "depthUpdate",
            "E": now_ms,
            "s": self.symbol,
            "U": first,
            "u": self._update_id,
            "b": self._drain_side(self._bids),
            "a": self._drain_side(self._asks),
        }
        return event

    def _drain_side(self, side: _Side) -> list[list[str]]:
        fp, fq, qty = self._format_price, self._format_qty, side.qty
        changed = sorted(side.dirty, reverse=side.is_bid)
        side.dirty.clear()
        return [[fp(p), fq(qty.get(p, 0))] for p in changed]

    def book_ticker(self) -> dict[str, Any]:
        bid, bid_qty, ask, ask_qty = self.top()
        fp, fq = self._format_price, self._format_qty
        return {"u": self._update_id, "s": self.symbol, "b": fp(bid), "B": fq(bid_qty), "a": fp(ask), "A": fq(ask_qty)}

    # --- order flow ------------------------------------------------------------------------------------

    def step(self, now_ns: int) -> list[dict[str, Any]]:
        """One random action at `now_ns`; returns the `aggTrade` events it produced (one per price level hit)."""
        rng = self._rng
        if rng.random() < self._mid_move_prob:
            self._mid = max(self._mid + (1 if rng.random() < 0.5 else -1), self.levels_band)
        roll = rng.random()
        trades: list[dict[str, Any]] = []
        if roll < self._limit_prob:
            trades = self._limit_order(now_ns)
        elif roll < self._market_below:
            trades = self._take(rng.random() < 0.5, self._draw_qty() * 2, None, now_ns)
        else:
            self._cancel()
        if len(self._bids.prices) < self.min_depth or len(self._asks.prices) < self.min_depth:
            self._replenish()
        return trades

    def _limit_order(self, now_ns: int) -> list[dict[str, Any]]:
        is_buy = self._rng.random() < 0.5
        offset, qty = self._draw_offset(), self._draw_qty()
        if is_buy:
            price = max(self._mid - offset, 1)
            if price < self._asks.best():
                self._add(self._bids, price, qty)
                return []
        else:
            price = self._mid + 1 + offset
            if price > self._bids.best():
                self._add(self._asks, price, qty)
                return []
        return self._take(is_buy, qty, price, now_ns)

    def _take(self, is_buy: bool, qty: int, limit: int | None, now_ns: int) -> list[dict[str, Any]]:
        """Walk the opposite side from its best level; a limit order rests whatever it could not fill."""
        book = self._asks if is_buy else self._bids
        trades: list[dict[str, Any]] = []
        now_ms = now_ns // 1_000_000
        while qty > 0:
            price = book.best()
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            level_qty = book.qty[price]
            fill = min(qty, level_qty)
            if fill == level_qty and len(book.prices) == 1:
                fill -= 1  # never empty a side: the venue keeps both sides quoted
                if fill == 0:
                    break
            self._change(book, price, level_qty - fill)
            qty -= fill
            trades.append(self._trade(price, fill, is_buy, now_ms))
            if fill < level_qty:
                break
        if limit is not None and qty > 0:
            # Rest the remainder unless the side's last level was kept at or through the limit (it would cross).
            if is_buy and limit < self._asks.best():
                self._add(self._bids, limit, qty)
            elif not is_buy and limit > self._bids.best():
                self._add(self._asks, limit, qty)
        return trades

    def _trade(self, price: int, qty: int, is_buy: bool, now_ms: int) -> dict[str, Any]:
        self._trade_id += 1
        return {
            "e": "aggTrade",
            "E": now_ms,
            "s": self.symbol,
            "a": self._trade_id,
            "p": self._format_price(price),
            "q": self._format_qty(qty),
            "f": self._trade_id,
            "l": self._trade_id,
            "T": now_ms,
            "m": not is_buy,  # the buyer is the maker when a seller took liquidity
            "M": True,
        }

    def _cancel(self) -> None:
        rng = self._rng
        side = self._bids if rng.random() < 0.5 else self._asks
        count = len(side.prices)
        worst = side.worst()
        # Orders left behind by the moving mid go first, so the book stays a band around the mid.
        if count > 1 and self._distance(side, worst) >= 2 * self.levels_band:
            self._change(side, worst, 0)
            return
        near_top = rng.random() < NEAR_TOP_CANCEL_PROB
        index = rng.randrange(min(count, NEAR_TOP_LEVELS) if near_top else count)
        price = side.nth_best(index)
        qty = side.qty[price]
        if count > 1 and rng.random() < FULL_CANCEL_PROB:
            self._change(side, price, 0)
        elif qty > 1:
            self._change(side, price, rng.randrange(1, qty))

    def _replenish(self) -> None:
        """Thin sides get fresh orders behind their touch (never crossing), so neither side runs dry."""
        rng = self._rng
        for _ in range(self.min_depth - len(self._bids)):
            anchor = min(self._mid, self._asks.best() - 1)
            self._add(self._bids, max(anchor - rng.randrange(self.levels_band), 1), self._draw_qty())
        for _ in range(self.min_depth - len(self._asks)):
            anchor = max(self._mid + 1, self._bids.best() + 1)
            self._add(self._asks, anchor + rng.randrange(self.levels_band), self._draw_qty())

    def _add(self, side: _Side, price: int, qty: int) -> None:
        """Rest `qty` at a non-crossing price; the worst level goes when the side would exceed max_depth."""
        depth = len(side.prices)
        if depth >= self.max_depth and price not in side.qty and side.is_worse(price, side.worst()):
            return  # it would be evicted at once
        self._change(side, price, side.qty.get(price, 0) + qty)
        if depth >= self.max_depth and len(side.prices) > self.max_depth:
            self._change(side, side.worst(), 0)

    def _change(self, side: _Side, price: int, qty: int) -> None:
        side.set(price, qty)
        self._update_id += 1

    def _distance(self, side: _Side, price: int) -> int:
        return self._mid - price if side.is_bid else price - self._mid - 1

    def _draw_qty(self) -> int:
        return 1 + int(self._rng.expovariate(self._inv_mean_qty))

    def _draw_offset(self) -> int:
        """Ticks behind the mid: mostly close to it, sometimes anywhere in the band."""
        rng = self._rng
        if rng.random() < DEEP_ORDER_PROB:
            return rng.randrange(self.levels_band)
        return min(int(rng.expovariate(self._inv_mean_offset)), self.levels_band - 1)
