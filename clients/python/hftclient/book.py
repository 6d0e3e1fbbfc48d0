"""A local copy of one order book, kept from stream messages by the sequence rules of docs/streaming.md."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .messages import BookMessage, Heartbeat, Level, Stale


@dataclass(frozen=True, slots=True)
class Gap:
    """A message showed that something was missed: `expected` is the next sequence the book needed
    (None before the first snapshot), `received` the sequence the message carried."""

    expected: int | None
    received: int


class LocalBook:
    """Exact levels (price → size), the last applied sequence, and whether the copy can be trusted.

    `apply` returns False when the book has a gap: it then ignores deltas until the next snapshot,
    which the owner obtains with a `resync` (or by reconnecting with `since_sequence`).
    """

    __slots__ = ("asks", "bids", "exchange_timestamp", "gap", "is_stale", "key", "sequence", "timestamp")

    def __init__(self, key: str = "") -> None:
        self.key = key
        self.sequence: int | None = None
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.is_stale = False
        self.gap: Gap | None = None
        self.exchange_timestamp: int | None = None
        self.timestamp: int | None = None  # publish time of the last applied event, ns

    @property
    def is_in_sync(self) -> bool:
        """A snapshot was applied, no sequence was missed since, and the venue book is not stale."""
        return self.sequence is not None and self.gap is None and not self.is_stale

    def apply(self, message: BookMessage | Heartbeat | Stale) -> bool:
        """Apply one message of this book; False when it has a gap and needs a snapshot."""
        if isinstance(message, BookMessage):
            if message.type == "snapshot":
                self._reset(message)
                return True
            return self._apply_delta(message)
        if isinstance(message, Stale):
            return self._apply_stale(message)
        return self._check_heartbeat(message)

    def _reset(self, snapshot: BookMessage) -> None:
        # Whatever its sequence: after a platform-wide reset the sequence may go down.
        self.bids = {price: size for price, size in snapshot.bids if size}
        self.asks = {price: size for price, size in snapshot.asks if size}
        self.sequence = snapshot.sequence
        self.gap = None
        self.is_stale = False
        self.exchange_timestamp = snapshot.exchange_timestamp
        self.timestamp = snapshot.timestamp

    def _apply_delta(self, delta: BookMessage) -> bool:
        if self.gap is not None:
            return False
        if self.sequence is None or delta.sequence != self.sequence + 1:
            self.gap = Gap(None if self.sequence is None else self.sequence + 1, delta.sequence)
            return False
        for side, levels in ((self.bids, delta.bids), (self.asks, delta.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        self.sequence = delta.sequence
        self.exchange_timestamp = delta.exchange_timestamp
        self.timestamp = delta.timestamp
        return True

    def _apply_stale(self, stale: Stale) -> bool:
        # A stale event is numbered like any book event; one at our own sequence (sent on subscribe to a
        # book that is already stale) is no gap.
        self.is_stale = True
        if self.gap is not None:
            return False
        if self.sequence is None or stale.sequence <= self.sequence:
            return True
        if stale.sequence != self.sequence + 1:
            self.gap = Gap(self.sequence + 1, stale.sequence)
            return False
        self.sequence = stale.sequence
        self.timestamp = stale.timestamp
        return True

    def _check_heartbeat(self, heartbeat: Heartbeat) -> bool:
        if self.gap is not None:
            return False
        if self.sequence is not None and heartbeat.sequence > self.sequence:
            self.gap = Gap(self.sequence + 1, heartbeat.sequence)
            return False
        return True

    def bid_levels(self, depth: int | None = None) -> list[Level]:
        """Bids, best (highest) first."""
        return sorted(self.bids.items(), reverse=True)[:depth]

    def ask_levels(self, depth: int | None = None) -> list[Level]:
        """Asks, best (lowest) first."""
        return sorted(self.asks.items())[:depth]

    def best_bid(self) -> Level | None:
        return max(self.bids.items()) if self.bids else None

    def best_ask(self) -> Level | None:
        return min(self.asks.items()) if self.asks else None
