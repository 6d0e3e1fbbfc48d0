"""A depth-limited view of a book (the top N levels per side) and the delta that keeps a client's copy exact.

A stream at depth N sends, for each book event, only what changed inside the client's window: levels
whose quantity changed, levels that moved in when better ones were removed, and levels pushed out
(quantity 0) when better ones arrived. Applying that delta to the old window and dropping zeros gives
the new window exactly, which the tests check for arbitrary books.
"""

from __future__ import annotations

from .book import Level


def window_delta(old: list[Level], new: list[Level]) -> tuple[Level, ...]:
    """Levels to send so that `old` becomes `new` (both a side's top N as (price, qty)); removals as qty 0."""
    if old == new:
        return ()
    before = dict(old)
    changes: list[Level] = []
    for price, qty in new:
        if before.pop(price, None) != qty:
            changes.append((price, qty))
    changes.extend((price, 0) for price in before)
    return tuple(changes)


def touches_window(changes: tuple[Level, ...], window: list[Level], depth: int, *, is_bid: bool) -> bool:
    """Whether a book change can alter the top-`depth` window: a cheap test that skips most deep updates.

    With a full window, a change strictly worse than the window's last price cannot move anything in it.
    """
    if not changes:
        return False
    if len(window) < depth:
        return True
    edge = window[-1][0]
    if is_bid:
        return any(price >= edge for price, _ in changes)
    return any(price <= edge for price, _ in changes)
