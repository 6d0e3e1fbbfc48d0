"""The consolidated book of one instrument: every venue's quantity summed by price, each venue's share kept.

Venue levels arrive at the venue's exponents and are rescaled to the instrument's (the finest of its
venues), so sums are exact. A venue that goes stale leaves the consolidated book until it is reset.

While one venue alone feeds an instrument (the embedded simulated market, any instrument configured on
one venue, or the one venue still live), the consolidated levels are that venue's: the venue's levels
*are* the totals' dicts, and a delta at the instrument's scale goes into them with `dict.update` (C) and
comes out as it went in. Its removals then stay in the dicts as zero quantities, dropped when levels are
read or when the dicts have grown to twice their live size; every reader here treats a zero as absent.
"""

from __future__ import annotations

from .book import ASK, BID, Level

COMPACT_MIN = 1024


class ConsolidatedBook:
    def __init__(self, price_exp: int, size_exp: int) -> None:
        self.price_exp = price_exp
        self.size_exp = size_exp
        self._venues: dict[str, dict[str, dict[int, int]]] = {}
        # Plain dicts: every venue change touches them, while sorted levels are wanted only for a reset.
        self._totals: dict[str, dict[int, int]] = {BID: {}, ASK: {}}
        # Entries (zeros included) past which the single-venue path drops the zeros again.
        self._compact_at = COMPACT_MIN

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
        own = self._venues.get(venue)
        if own is None:
            self._separate()
            own = self._venues[venue] = {BID: {}, ASK: {}}
        if not is_reset and price_exp == self.price_exp and size_exp == self.size_exp:
            if len(self._venues) == 1:
                # The hottest path: the only venue's delta is the consolidated delta (a price given twice:
                # the later wins, both are reported, as below). Its levels are the totals, so the venue
                # shares the totals' dicts until another venue joins or it is reset (`_separate`).
                totals = self._totals
                if own is not totals:
                    self._venues[venue] = totals
                totals[BID] |= bids  # `update` through the operator slot (~30 ns less a call)
                totals[ASK] |= asks
                if len(totals[BID]) + len(totals[ASK]) > self._compact_at:
                    self._compact()
                return bids, asks
            # A delta at the instrument's scale is folded in as it is, in order.
            return self._update(own[BID], BID, bids), self._update(own[ASK], ASK, asks)
        self._separate()
        own = self._venues[venue]
        result = []
        for side, levels in ((BID, bids), (ASK, asks)):
            if price_exp == self.price_exp and size_exp == self.size_exp:
                scaled = dict(levels)
            else:
                price_k, size_k = 10 ** (self.price_exp - price_exp), 10 ** (self.size_exp - size_exp)
                scaled = {p * price_k: q * size_k for p, q in levels}
            if is_reset:
                # Levels the venue no longer has go to zero; the new book replaces the old.
                scaled = {**dict.fromkeys(own[side], 0), **scaled}
            result.append(self._update(own[side], side, tuple(scaled.items())))
        return result[0], result[1]

    def remove_venue(self, venue: str) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        self._separate()
        own = self._venues.pop(venue, None)
        if own is None:
            return (), ()
        return (
            self._update(dict(own[BID]), BID, tuple(dict.fromkeys(own[BID], 0).items())),
            self._update(dict(own[ASK]), ASK, tuple(dict.fromkeys(own[ASK], 0).items())),
        )

    def _separate(self) -> None:
        """Give the venue that shares the totals' dicts (the single-venue path) dicts of its own again."""
        for venue, own in self._venues.items():
            if own is self._totals:
                self._venues[venue] = {side: {p: q for p, q in levels.items() if q} for side, levels in own.items()}

    def _compact(self) -> None:
        """Drop the zero quantities the single-venue path leaves behind."""
        for levels in (*self._totals.values(), *(side for own in self._venues.values() for side in own.values())):
            for price in [price for price, qty in levels.items() if not qty]:
                del levels[price]
        self._compact_at = max(COMPACT_MIN, 2 * (len(self._totals[BID]) + len(self._totals[ASK])))

    def _update(self, own: dict[int, int], side: str, changes: tuple[Level, ...]) -> tuple[Level, ...]:
        """Set the venue's levels in order (a price given twice: the later wins, both are reported)."""
        totals = self._totals[side]
        own_get, totals_get = own.get, totals.get  # bound once: this loop runs for every level of every delta
        out: list[Level] = []
        append = out.append
        for price, qty in changes:
            old = own_get(price, 0)
            if qty == old:
                continue
            if qty:
                own[price] = qty
            else:
                del own[price]
            total = totals_get(price, 0) - old + qty
            if total:
                totals[price] = total
            else:
                del totals[price]
            append((price, total))
        return tuple(out)

    def levels(self, side: str) -> tuple[Level, ...]:
        """Every consolidated level, best first."""
        return tuple(sorted(((p, q) for p, q in self._totals[side].items() if q), reverse=side == BID))

    def shares(self, side: str, price: int) -> dict[str, int]:
        """Each venue's quantity at a consolidated price level."""
        return {venue: qty for venue, levels in self._venues.items() if (qty := levels[side].get(price, 0))}

    def venues(self) -> list[str]:
        return sorted(self._venues)
