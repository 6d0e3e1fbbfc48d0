"""One venue's order book in fixed-point integers, keeping each level's original text for checksums.

`apply` returns only real changes (quantity 0 = removed), so a delta never carries no-ops, and a delete
of a level that is not in the book (normal for depth-limited snapshots) is not a change.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedDict

from .fixedpoint import to_units

BID = "bid"
ASK = "ask"
dict_set = dict.__setitem__  # SortedDict is a dict; its own __setitem__ is Python code
Level = tuple[int, int]  # (price units, quantity units)
TextLevel = tuple[str, str]  # (price text, quantity text) exactly as the venue sent them


class OrderBook:
    __slots__ = ("_asks", "_bids", "_prices", "_text", "keep_text", "price_exp", "size_exp")

    def __init__(self, price_exp: int, size_exp: int, *, keep_text: bool = True) -> None:
        self.price_exp = price_exp
        self.size_exp = size_exp
        # Only checksummed venues (OKX, Kraken) need each level's original text.
        self.keep_text = keep_text
        self._bids: SortedDict = SortedDict()  # price → qty; best bid is the last key
        self._asks: SortedDict = SortedDict()  # price → qty; best ask is the first key
        self._text: dict[tuple[str, int], TextLevel] = {}
        self._prices: dict[str, int] = {}  # price text → units: prices recur, so parse each once

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._text.clear()

    def load(self, bids: Iterable[TextLevel], asks: Iterable[TextLevel]) -> None:
        """Replace the whole book (a snapshot)."""
        self.clear()
        for price, qty in bids:
            self.apply(BID, price, qty)
        for price, qty in asks:
            self.apply(ASK, price, qty)

    def apply(self, side: str, price_text: str, qty_text: str) -> Level | None:
        """Set a level to an absolute quantity; returns the change, or None when nothing changed."""
        changes = self.apply_many(side, ((price_text, qty_text),))
        return changes[0] if changes else None

    def apply_many(self, side: str, levels_text: Iterable[TextLevel] | Iterable[list[str]]) -> list[Level]:
        """Apply a message's levels of one side in order; returns the real changes (the hot path)."""
        levels = self._bids if side == BID else self._asks
        prices, text, keep_text = self._prices, self._text, self.keep_text
        price_exp, size_exp = self.price_exp, self.size_exp
        changes: list[Level] = []
        for price_text, qty_text in levels_text:
            price = prices.get(price_text)
            if price is None:
                price = to_units(price_text, price_exp)
                if len(prices) > 100_000:
                    prices.clear()
                prices[price_text] = price
            whole, _, frac = qty_text.partition(".")
            if len(frac) == size_exp and whole.isdigit() and frac.isdigit() and qty_text.isascii():
                qty = int(whole + frac)  # to_units' fast path, inlined: this line runs for every level
            else:
                qty = to_units(qty_text, size_exp)
            if qty == 0:
                if levels.pop(price, None) is not None:
                    if keep_text:
                        del text[(side, price)]
                    changes.append((price, 0))
                continue
            if keep_text:
                text[(side, price)] = (price_text, qty_text)
            old = levels.get(price)
            if old != qty:
                if old is None:
                    levels[price] = qty  # a new price: SortedDict files the key in order
                else:
                    dict_set(levels, price, qty)  # same key, new value: the sorted key list is untouched
                changes.append((price, qty))
        return changes

    def truncate(self, side: str, depth: int) -> list[Level]:
        """Drop levels beyond `depth` (Kraken sends no deletes for them); returns them as removals."""
        levels = self._bids if side == BID else self._asks
        removed: list[Level] = []
        while len(levels) > depth:
            price, _ = levels.popitem(0 if side == BID else -1)
            self._text.pop((side, price), None)
            removed.append((price, 0))
        return removed

    def best_bid(self) -> Level | None:
        return self._bids.peekitem(-1) if self._bids else None

    def best_ask(self) -> Level | None:
        return self._asks.peekitem(0) if self._asks else None

    def is_crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def top(self, side: str, n: int | None = None) -> list[Level]:
        """Best first; all levels when n is None."""
        levels = self._bids if side == BID else self._asks
        keys = levels.keys()
        count = len(keys) if n is None else min(n, len(keys))
        if side == BID:
            return [(p, levels[p]) for p in keys[len(keys) - count :][::-1]]
        return [(p, levels[p]) for p in keys[:count]]

    def top_text(self, side: str, n: int) -> list[TextLevel]:
        if not self.keep_text:
            raise ValueError("this book keeps no level text (keep_text=False)")
        return [self._text[(side, price)] for price, _ in self.top(side, n)]

    def depth(self, side: str) -> int:
        return len(self._bids if side == BID else self._asks)
