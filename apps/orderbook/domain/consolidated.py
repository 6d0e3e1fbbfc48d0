"""The consolidated book of one instrument: every venue's quantity summed by price, each venue's share kept.

Venue levels arrive at the venue's exponents and are rescaled to the instrument's (the finest of its
venues), so sums are exact. A venue that goes stale leaves the consolidated book until it is reset.
"""

from __future__ import annotations

from sortedcontainers import SortedDict

from .book import ASK, BID, Level
from .fixedpoint import rescale


class ConsolidatedBook:
    def __init__(self, price_exp: int, size_exp: int) -> None:
        self.price_exp = price_exp
        self.size_exp = size_exp
        self._venues: dict[str, dict[str, dict[int, int]]] = {}
        self._totals: dict[str, SortedDict] = {BID: SortedDict(), ASK: SortedDict()}

    def apply(
        self,
        venue: str,
        bids: tuple[Level, ...],
        asks: tuple[Level, ...],
        *,
        price_exp: int,
        size_exp: int,
        is_reset: bool,
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Fold one venue change in; returns the consolidated levels that changed (qty 0 = removed)."""
        own = self._venues.setdefault(venue, {BID: {}, ASK: {}})
        result = []
        for side, levels in ((BID, bids), (ASK, asks)):
            scaled = {rescale(p, price_exp, self.price_exp): rescale(q, size_exp, self.size_exp) for p, q in levels}
            if is_reset:
                # Levels the venue no longer has go to zero; the new book replaces the old.
                scaled = {**dict.fromkeys(own[side], 0), **scaled}
            result.append(self._update(own[side], side, scaled))
        return result[0], result[1]

    def remove_venue(self, venue: str) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        own = self._venues.pop(venue, None)
        if own is None:
            return (), ()
        return (
            self._update(dict(own[BID]), BID, dict.fromkeys(own[BID], 0)),
            self._update(dict(own[ASK]), ASK, dict.fromkeys(own[ASK], 0)),
        )

    def _update(self, own: dict[int, int], side: str, changes: dict[int, int]) -> tuple[Level, ...]:
        totals = self._totals[side]
        out: list[Level] = []
        for price, qty in changes.items():
            old = own.get(price, 0)
            if qty == old:
                continue
            if qty:
                own[price] = qty
            else:
                own.pop(price, None)
            total = totals.get(price, 0) - old + qty
            if total:
                totals[price] = total
            else:
                totals.pop(price, None)
            out.append((price, total))
        return tuple(out)

    def levels(self, side: str) -> tuple[Level, ...]:
        """Every consolidated level, best first."""
        totals = self._totals[side]
        items = list(totals.items())
        return tuple(reversed(items)) if side == BID else tuple(items)

    def shares(self, side: str, price: int) -> dict[str, int]:
        """Each venue's quantity at a consolidated price level."""
        return {venue: levels[side][price] for venue, levels in self._venues.items() if price in levels[side]}

    def venues(self) -> list[str]:
        return sorted(self._venues)
