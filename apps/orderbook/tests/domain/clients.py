"""Test helper: what a subscriber does with our book changes, to check that they rebuild our book."""

from __future__ import annotations

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.events import BookChange


def apply_to_client(client: dict[str, dict[int, int]], change: BookChange) -> None:
    """A reset replaces, a delta sets (qty 0 removes)."""
    for side, levels in ((BID, change.bids), (ASK, change.asks)):
        if change.is_reset:
            client[side] = {}
        for price, qty in levels:
            if qty:
                client[side][price] = qty
            else:
                client[side].pop(price, None)
