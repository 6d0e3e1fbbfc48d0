"""A book rebuilt from published events (snapshot, delta, stale): the hub's, the publisher's, a client's."""

from __future__ import annotations

from sortedcontainers import SortedDict

from .book import ASK, BID, Level
from .events import DELTA, SNAPSHOT, STALE, BookEvent


class SequenceGap(Exception):
    """An event arrived whose seq is not the next one: the replica must be rebuilt."""


class BookReplica:
    __slots__ = (
        "_asks",
        "_bids",
        "book",
        "exchange_ts_ns",
        "is_stale",
        "price_exp",
        "publish_ts_ns",
        "seq",
        "size_exp",
    )

    def __init__(self, book: str, price_exp: int, size_exp: int) -> None:
        self.book = book
        self.price_exp = price_exp
        self.size_exp = size_exp
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self.seq = 0
        self.is_stale = True  # until the first snapshot
        self.exchange_ts_ns: int | None = None
        self.publish_ts_ns = 0

    def apply(self, event: BookEvent) -> bool:
        """Apply the next event; False for one already applied; SequenceGap if one is missing."""
        if event.seq <= self.seq:
            return False
        if self.seq and event.seq != self.seq + 1 and event.kind != SNAPSHOT:
            raise SequenceGap(f"{self.book}: got {event.seq} after {self.seq}")
        self.absorb(event)
        self.seq = event.seq
        self.publish_ts_ns = event.publish_ts_ns
        return True

    def absorb(self, event: BookEvent) -> None:
        """Take in an event's book content but not its sequence: the publisher's own event that the bus did
        not number (a failed or refused publish), so that the snapshot it re-publishes includes it."""
        if event.kind == SNAPSHOT:
            self._bids.clear()
            self._asks.clear()
            self.is_stale = False
        elif event.kind == STALE:
            self.is_stale = True
        if event.kind in (SNAPSHOT, DELTA):
            _set_levels(self._bids, event.bids)
            _set_levels(self._asks, event.asks)
        self.price_exp, self.size_exp = event.price_exp, event.size_exp
        self.exchange_ts_ns = event.exchange_ts_ns

    def top(self, side: str, n: int | None = None) -> list[Level]:
        levels = self._bids if side == BID else self._asks
        keys = levels.keys()
        count = len(keys) if n is None else min(n, len(keys))
        chosen = keys[len(keys) - count :][::-1] if side == BID else keys[:count]
        return [(price, levels[price]) for price in chosen]

    def depth(self, side: str) -> int:
        return len(self._bids if side == BID else self._asks)

    def snapshot_event(self, publish_ts_ns: int) -> BookEvent:
        """The whole book as an event at the current seq: SNAPSHOT, or STALE while the book is not trusted
        (for checkpoints, re-publishing, and the hub's reset events)."""
        return BookEvent(
            self.book,
            self.seq,
            SNAPSHOT if not self.is_stale else STALE,
            tuple(self.top(BID)),
            tuple(self.top(ASK)),
            self.price_exp,
            self.size_exp,
            self.exchange_ts_ns,
            publish_ts_ns,
            publish_ts_ns,
        )


def _set_levels(levels: SortedDict | dict[int, int], changes: tuple[Level, ...]) -> None:
    for price, qty in changes:
        if qty:
            levels[price] = qty
        else:
            levels.pop(price, None)


class CheckpointReplica(BookReplica):
    """A replica kept only to write checkpoints: plain dicts, sorted when asked (about once a second).

    A delta's levels go in with one `dict.update` (C), removals included as zero quantities; the zeros
    are dropped when the levels are read, so the per-event cost is that one call per side.
    """

    __slots__ = ()

    def __init__(self, book: str, price_exp: int, size_exp: int) -> None:
        super().__init__(book, price_exp, size_exp)
        self._bids = {}
        self._asks = {}

    def apply(self, event: BookEvent) -> bool:
        if event.seq == self.seq + 1 and event.kind == DELTA:  # the next delta, as nearly every event is
            self.absorb(event)
            self.seq, self.publish_ts_ns = event.seq, event.publish_ts_ns
            return True
        return super().apply(event)

    def absorb(self, event: BookEvent) -> None:
        kind = event.kind
        if kind == DELTA:
            self._bids |= event.bids  # `|=` is `update` through the operator slot: ~30 ns less a call
            self._asks |= event.asks
            self.price_exp, self.size_exp = event.price_exp, event.size_exp
            self.exchange_ts_ns = event.exchange_ts_ns
        else:
            super().absorb(event)

    def top(self, side: str, n: int | None = None) -> list[Level]:
        levels = self._bids if side == BID else self._asks
        if 0 in levels.values():
            levels = {price: qty for price, qty in levels.items() if qty}
            if side == BID:
                self._bids = levels
            else:
                self._asks = levels
        ordered = sorted(levels.items(), reverse=side == BID)
        return ordered if n is None else ordered[:n]

    def depth(self, side: str) -> int:
        return len(self.top(side))
