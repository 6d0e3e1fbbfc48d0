"""Liquidity paper takers have used on one book, so that the next taker does not take it again.

The venue's book does not change when a paper order fills against it, so without this a batch of market
orders would each fill at the best price in full. A level's use is remembered with the quantity the book
showed when it was taken; when the book shows that level at another quantity, the venue has moved on and
what it shows now is what there is (our use is forgotten). Shared by every customer's orders on the book,
as on a venue.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from .matching import Levels, Match
from .types import Side

MAX_LEVELS = 10_000  # levels remembered per book before starting afresh (prices the book no longer shows)


class UsedLiquidity:
    __slots__ = ("_used",)

    def __init__(self) -> None:
        # (side of the book, price) -> (quantity the book showed, quantity paper takers used of it)
        self._used: dict[tuple[Side, Decimal], tuple[Decimal, Decimal]] = {}

    def remaining(
        self, book_side: Side, levels: Levels, *, limit: Decimal | None = None, enough: Decimal | None = None
    ) -> list[tuple[Decimal, Decimal]]:
        """The levels of one side as the next taker finds them: less what takers used while the book showed
        the same quantity; exhausted levels left out.

        For a taker with price `limit` and quantity `enough` it stops at what its execution reads (the
        matching module's `execute_incoming`): the levels that cross up to the first that holds enough
        with those before it, or up to and including the first non-empty level beyond the limit (which
        tells a market order that there is a market, just not at its price)."""
        out: list[tuple[Decimal, Decimal]] = []
        total = Decimal(0)
        for price, shown in levels:
            key = (book_side, price)
            used = self._used.get(key)
            left = shown
            if used is not None:
                if used[0] == shown:
                    left = shown - used[1]
                else:
                    del self._used[key]  # the venue's level changed: its quantity now is the truth
            if left > 0:
                out.append((price, left))
                if limit is not None and (price > limit if book_side is Side.SELL else price < limit):
                    break
                total += left
                if enough is not None and total >= enough:
                    break
        return out

    def take(self, book_side: Side, levels: Levels, matches: Sequence[Match]) -> None:
        """Remember a taker's fills against `levels` (the side as the book showed it, before `remaining`)."""
        taken = {match.price for match in matches if match.liquidity == "taker"}
        shown_at: dict[Decimal, Decimal] = {}
        for price, shown in levels:  # best first: the taken prices are near the top
            if price in taken:
                shown_at[price] = shown
                if len(shown_at) == len(taken):
                    break
        if len(self._used) > MAX_LEVELS:
            self._used.clear()
        for match in matches:
            if match.liquidity != "taker" or match.price not in shown_at:
                continue
            key = (book_side, match.price)
            shown = shown_at[match.price]
            before = self._used.get(key)
            already = before[1] if before is not None and before[0] == shown else Decimal(0)
            self._used[key] = (shown, already + match.quantity)
