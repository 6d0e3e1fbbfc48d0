"""One venue's order book in fixed-point integers, keeping each level's original text for checksums.

`apply` returns only real changes (quantity 0 = removed), so a delta never carries no-ops, and a delete
of a level that is not in the book (normal for depth-limited snapshots) is not a change.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from .fixedpoint import to_units

BID = "bid"
ASK = "ask"
Level = tuple[int, int]  # (price units, quantity units)
TextLevel = tuple[str, str]  # (price text, quantity text) exactly as the venue sent them


class OrderBook:
    """Each side is a dict (price → quantity) and a sorted list of its prices, kept with `bisect` (C):
    a quantity change touches the dict only, a new or removed price one `insort` or `del` in the list.
    (`SortedDict` does the same through several layers of Python per call, about 1 µs each.)"""

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids", "_prices", "_text", "keep_text", "price_exp", "size_exp")

    def __init__(self, price_exp: int, size_exp: int, *, keep_text: bool = True) -> None:
        self.price_exp = price_exp
        self.size_exp = size_exp
        # Only checksummed venues (OKX, Kraken) need each level's original text.
        self.keep_text = keep_text
        self._bids: dict[int, int] = {}  # price → qty
        self._asks: dict[int, int] = {}
        self._bid_keys: list[int] = []  # ascending: the best bid is the last
        self._ask_keys: list[int] = []  # ascending: the best ask is the first
        self._text: dict[tuple[str, int], TextLevel] = {}
        self._prices: dict[str, int] = {}  # price text → units: prices recur, so parse each once

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        self._text.clear()

    def load(self, bids: Iterable[TextLevel], asks: Iterable[TextLevel]) -> None:
        """Replace the whole book (a snapshot): levels set in order, each side's prices sorted once."""
        self.clear()
        self._apply(BID, bids, None)
        self._apply(ASK, asks, None)
        self._bid_keys[:] = sorted(self._bids)
        self._ask_keys[:] = sorted(self._asks)

    def apply(self, side: str, price_text: str, qty_text: str) -> Level | None:
        """Set a level to an absolute quantity; returns the change, or None when nothing changed."""
        changes = self.apply_many(side, ((price_text, qty_text),))
        return changes[0] if changes else None

    def apply_many(self, side: str, levels_text: Iterable[TextLevel] | Iterable[list[str]]) -> list[Level]:
        """Apply a message's levels of one side in order; returns the real changes."""
        return self._apply(side, levels_text, self._bid_keys if side == BID else self._ask_keys)

    def apply_update(
        self, bids_text: Iterable[TextLevel] | Iterable[list[str]], asks_text: Iterable[TextLevel] | Iterable[list[str]]
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Apply a message's levels, each side in order (the hot path); returns each side's real changes, a price
        changed more than once in the message given once, with its last quantity."""
        return (
            merge_changes(self._apply(BID, bids_text, self._bid_keys)),
            merge_changes(self._apply(ASK, asks_text, self._ask_keys)),
        )

    def _apply(
        self, side: str, levels_text: Iterable[TextLevel] | Iterable[list[str]], keys: list[int] | None
    ) -> list[Level]:
        """`keys`: the side's sorted prices to keep in step, or None while loading (sorted afterwards)."""
        levels = self._bids if side == BID else self._asks
        prices, text, keep_text = self._prices, self._text, self.keep_text
        price_exp, size_exp = self.price_exp, self.size_exp
        # to_units' fast path, inlined (this runs for every level): digits, a dot with exactly `size_exp`
        # digits after it and at least one before, nothing else.
        dot_at, dot_min = -size_exp - 1, size_exp + 1
        changes: list[Level] = []
        for price_text, qty_text in levels_text:
            price = prices.get(price_text)
            if price is None:
                price = to_units(price_text, price_exp)
                if len(prices) > 100_000:
                    prices.clear()
                prices[price_text] = price
            if (
                len(qty_text) > dot_min
                and qty_text[dot_at] == "."
                and (digits := qty_text.replace(".", "", 1)).isdigit()
                and digits.isascii()
            ):
                qty = int(digits)
            else:
                qty = to_units(qty_text, size_exp)
            if qty == 0:
                if levels.pop(price, None) is not None:
                    if keys is not None:
                        del keys[bisect_left(keys, price)]
                    if keep_text:
                        del text[(side, price)]
                    changes.append((price, 0))
                continue
            if keep_text:
                text[(side, price)] = (price_text, qty_text)
            old = levels.get(price)
            if old != qty:
                if old is None and keys is not None:
                    insort(keys, price)
                levels[price] = qty
                changes.append((price, qty))
        return changes

    def truncate(self, side: str, depth: int) -> list[Level]:
        """Drop levels beyond `depth` (Kraken sends no deletes for them); returns them as removals, the
        deepest first."""
        keys = self._bid_keys if side == BID else self._ask_keys
        extra = len(keys) - depth
        if extra <= 0:
            return []
        if side == BID:  # the worst bids are the lowest prices: the front of the list
            dropped = keys[:extra]
            del keys[:extra]
        else:
            dropped = keys[depth:][::-1]
            del keys[depth:]
        levels = self._bids if side == BID else self._asks
        for price in dropped:
            del levels[price]
            self._text.pop((side, price), None)
        return [(price, 0) for price in dropped]

    def best_bid(self) -> Level | None:
        keys = self._bid_keys
        return (keys[-1], self._bids[keys[-1]]) if keys else None

    def best_ask(self) -> Level | None:
        keys = self._ask_keys
        return (keys[0], self._asks[keys[0]]) if keys else None

    def is_crossed(self) -> bool:
        bids, asks = self._bid_keys, self._ask_keys
        return bool(bids) and bool(asks) and bids[-1] >= asks[0]

    def top(self, side: str, n: int | None = None) -> list[Level]:
        """Best first; all levels when n is None."""
        if side == BID:
            levels, keys = self._bids, self._bid_keys
            chosen = keys[::-1] if n is None else keys[: -n - 1 : -1] if n > 0 else []
        else:
            levels, keys = self._asks, self._ask_keys
            chosen = keys if n is None else keys[:n]
        return [(p, levels[p]) for p in chosen]

    def top_text(self, side: str, n: int) -> list[TextLevel]:
        if not self.keep_text:
            raise ValueError("this book keeps no level text (keep_text=False)")
        return [self._text[(side, price)] for price, _ in self.top(side, n)]

    def depth(self, side: str) -> int:
        return len(self._bids if side == BID else self._asks)


def merge_changes(changes: list[Level]) -> tuple[Level, ...]:
    """One side's changes from one message, each price once: its last quantity, at its first position."""
    if len(changes) < 2:
        return tuple(changes)
    merged = dict(changes)
    return tuple(changes) if len(merged) == len(changes) else tuple(merged.items())
