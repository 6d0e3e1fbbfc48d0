"""The embedded bus's history: what it keeps, what it gives back, and what it costs the garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, BookEvent
from apps.orderbook.services.bus import InProcessBus, unpublished

BOOK = "sim:BTC-USDT"


def published(count: int, start_price: int = 10_000) -> list[BookEvent]:
    """A snapshot, deltas (levels built at run time, as a connector builds them), a stale, a snapshot again."""
    events = [unpublished(BOOK, SNAPSHOT, ((start_price, 5),), ((start_price + 10, 7),), 2, 8, 11, 12)]
    for i in range(count):
        bids = tuple((start_price - k, i + k) for k in range(i % 4))
        asks = tuple((start_price + 10 + k, 0) for k in range(i % 3))
        events.append(unpublished(BOOK, DELTA, bids, asks, 2, 8, None if i % 2 else 1_000 + i, 2_000 + i))
    events.append(unpublished(BOOK, STALE, (), (), 2, 8, None, 5_000, "gap"))
    events.append(unpublished(BOOK, SNAPSHOT, ((start_price, 1),), (), 2, 8, 6_000, 6_001, "reset"))
    return events


def fields(event: BookEvent) -> tuple[object, ...]:
    return (
        event.book,
        event.seq,
        event.kind,
        event.bids,
        event.asks,
        event.price_exp,
        event.size_exp,
        event.exchange_ts_ns,
        event.receive_ts_ns,
        event.publish_ts_ns,
        event.reason,
    )


def test_history_gives_back_every_field_of_the_events_published_in_order() -> None:
    bus = InProcessBus(1000)
    events = published(50)
    for i, event in enumerate(events):
        bus.publish([event], 9_000 + i)
    kept = bus.history(BOOK, 0, 1000)
    assert [fields(e) for e in kept] == [fields(e) for e in events]
    assert [e.seq for e in kept] == list(range(1, len(events) + 1))
    assert bus.bounds(BOOK) == (1, len(events))
    assert [e.seq for e in bus.history(BOOK, 10, 3)] == [11, 12, 13]
    assert bus.history(BOOK, len(events), 10) == []
    assert bus.history("sim:ETH-USDT", 0, 10) == []
    assert bus.bounds("sim:ETH-USDT") == (0, 0)


def test_history_keeps_the_newest_events_up_to_its_length() -> None:
    bus = InProcessBus(10)
    events = published(30)
    bus.publish(events, 1)
    last = len(events)
    assert bus.bounds(BOOK) == (last - 9, last)
    assert bus.history(BOOK, 0, 5) == []  # older than the history: the caller answers 410
    assert [fields(e) for e in bus.history(BOOK, last - 10, 100)] == [fields(e) for e in events[-10:]]
    assert [e.seq for e in bus.history(BOOK, last - 4, 2)] == [last - 3, last - 2]


@pytest.fixture
def collector_paused() -> Iterator[None]:
    """Collections only when the test asks for them, as the young generations see them in a running process."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("collector_paused")
def test_kept_history_is_untracked_by_the_garbage_collector_before_it_reaches_the_oldest_generation() -> None:
    """What the history keeps must leave the collector's tracking in the two young generations: kept events
    (objects) or tuples nesting the level tuples would reach the oldest one and set off full collections,
    each a pause that grows with the history (tens of ms at 100,000 events per book, BENCHMARKS.md)."""
    bus = InProcessBus(1000)
    events = published(300)
    bus.publish(events, 1)
    kept = bus._history[BOOK]
    gc.collect(0)
    gc.collect(1)
    still_tracked = [x for x in (*kept.fields, *kept.bids, *kept.asks) if gc.is_tracked(x)]
    assert still_tracked == []
