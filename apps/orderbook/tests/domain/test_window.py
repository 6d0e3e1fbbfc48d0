"""A depth-limited stream's deltas keep a client's top-N window exactly equal to the server's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.orderbook.domain.book import ASK, BID, Level
from apps.orderbook.domain.events import DELTA, SNAPSHOT, BookEvent
from apps.orderbook.domain.replica import BookReplica
from apps.orderbook.domain.window import touches_window, window_delta

levels = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 5)), max_size=6)


def event(seq: int, kind: str, bids: list[Level], asks: list[Level]) -> BookEvent:
    return BookEvent("t:X", seq, kind, tuple(dict(bids).items()), tuple(dict(asks).items()), 0, 0, None, 0, 0)


@settings(max_examples=300)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=40), st.integers(1, 8))
def test_applying_window_deltas_keeps_the_client_window_equal_to_the_top_n(
    updates: list[tuple[list[Level], list[Level]]], depth: int
) -> None:
    replica = BookReplica("t:X", 0, 0)
    replica.apply(
        event(1, SNAPSHOT, [(p, q) for p, q in updates[0][0] if q], [(p + 50, q) for p, q in updates[0][1] if q])
    )
    window = {BID: replica.top(BID, depth), ASK: replica.top(ASK, depth)}
    client = {side: dict(levels) for side, levels in window.items()}
    for seq, (bids, asks) in enumerate(updates[1:], start=2):
        change = event(seq, DELTA, bids, [(p + 50, q) for p, q in asks])
        replica.apply(change)
        for side, changed in ((BID, change.bids), (ASK, change.asks)):
            new = replica.top(side, depth)
            if not touches_window(changed, window[side], depth, is_bid=side == BID):
                assert new == window[side], "a change the cheap test skipped did move the window"
                continue
            for price, qty in window_delta(window[side], new):
                if qty:
                    client[side][price] = qty
                else:
                    client[side].pop(price, None)
            window[side] = new
            assert sorted(client[side].items(), reverse=side == BID) == new


def test_window_delta_sends_the_level_that_moves_in_and_the_one_pushed_out() -> None:
    old = [(10, 1), (9, 1)]
    assert window_delta(old, [(9, 1), (8, 4)]) == ((8, 4), (10, 0))  # best removed: 8 moves in
    assert window_delta(old, [(11, 2), (10, 1)]) == ((11, 2), (9, 0))  # better arrived: 9 pushed out
    assert window_delta(old, old) == ()
