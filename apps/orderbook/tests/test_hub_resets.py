"""The hub's listener contract and the publisher's failure path, on the in-process bus (no services).

Whenever the hub builds or replaces a replica other than by applying the next event in order, its listeners
get one reset event (the rebuilt replica, `reason="reset"`) instead of the event that triggered it.
"""

from __future__ import annotations

import time

import pytest

from apps.orderbook.domain.book import ASK, BID, Level
from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, BookChange, BookEvent, Trade
from apps.orderbook.services.bus import InProcessBus
from apps.orderbook.services.hub import MarketDataHub
from apps.orderbook.services.publisher import FeedPublisher, Precision, PublishFailed

BOOK = "sim:BTC-USDT"


def event(seq: int, kind: str, bids: tuple[Level, ...], publish_ts: int, asks: tuple[Level, ...] = ()) -> BookEvent:
    return BookEvent(BOOK, seq, kind, bids, asks, 2, 8, None, publish_ts, publish_ts)


def listening_hub(bus: InProcessBus | None = None) -> tuple[MarketDataHub, list[BookEvent]]:
    hub = MarketDataHub(bus or InProcessBus(1000))
    heard: list[BookEvent] = []
    hub.add_listener(heard.append)
    return hub, heard


def levels(hub: MarketDataHub) -> tuple[int, list[Level], list[Level], bool]:
    view = hub.view(BOOK, None)
    assert view is not None
    return view.seq, view.bids, view.asks, view.is_stale


def test_in_order_events_reach_listeners_as_published_and_duplicates_not_at_all() -> None:
    hub, heard = listening_hub()
    first = [
        event(1, SNAPSHOT, ((100, 1),), 1000),
        event(2, DELTA, ((101, 2),), 1001),
        event(3, DELTA, ((99, 3),), 1002),
    ]
    for e in first:
        hub.on_event(e)
    hub.on_event(event(2, DELTA, ((101, 2),), 1001))  # the subscribe-then-bootstrap overlap
    hub.on_event(event(1, SNAPSHOT, ((100, 1),), 1000))
    assert heard == first
    assert levels(hub) == (3, [(101, 2), (100, 1), (99, 3)], [], False)


def test_a_snapshot_at_a_lower_seq_published_later_is_a_sequence_reset() -> None:
    hub, heard = listening_hub()
    hub.on_event(event(1, SNAPSHOT, ((100, 1),), 1000))
    for seq in range(2, 51):
        hub.on_event(event(seq, DELTA, ((100 + seq, seq),), 1000 + seq))
    heard.clear()
    # Redis and the feed runner restarted: the new runner numbers from 1 again, later in time.
    hub.on_event(event(1, SNAPSHOT, ((7, 7),), 5000, asks=((8, 8),)))
    assert levels(hub) == (1, [(7, 7)], [(8, 8)], False)
    assert len(heard) == 1
    assert (heard[0].kind, heard[0].seq, heard[0].reason) == (SNAPSHOT, 1, "reset")
    assert (heard[0].bids, heard[0].asks) == (((7, 7),), ((8, 8),))
    hub.on_event(event(2, DELTA, ((6, 6),), 5001))  # and the new sequence goes on in order
    assert heard[-1].seq == 2
    assert heard[-1].reason == ""
    assert levels(hub)[0:2] == (2, [(7, 7), (6, 6)])


def test_a_delta_at_a_lower_seq_published_later_rebuilds_the_book_from_the_bus() -> None:
    bus = InProcessBus(1000)
    hub, heard = listening_hub(bus)  # not subscribed: fed by hand
    hub.on_event(event(1, SNAPSHOT, ((100, 1),), 1000))
    for seq in range(2, 21):
        hub.on_event(event(seq, DELTA, ((100 + seq, seq),), 1000 + seq))
    # The new sequence on the bus; the hub missed its snapshot (it was resubscribing).
    new = bus.publish([event(0, SNAPSHOT, ((7, 7),), 0), event(0, DELTA, ((6, 6),), 0)], 5000)
    heard.clear()
    hub.on_event(new[1])
    assert levels(hub) == (2, [(7, 7), (6, 6)], [], False)
    assert [(e.kind, e.seq, e.reason) for e in heard] == [(SNAPSHOT, 2, "reset")]
    assert heard[0].bids == ((7, 7), (6, 6))


def test_a_gap_rebuilds_from_the_bus_and_listeners_get_the_whole_book() -> None:
    bus = InProcessBus(1000)
    hub, heard = listening_hub(bus)
    published = bus.publish(
        [event(0, SNAPSHOT, ((100, 1),), 0)] + [event(0, DELTA, ((100 + i, i),), 0) for i in range(1, 6)], 1000
    )
    hub.on_event(published[0])
    hub.on_event(published[1])
    heard.clear()
    hub.on_event(published[5])  # 3 to 5 lost
    assert levels(hub)[0] == 6
    assert [(e.kind, e.seq, e.reason) for e in heard] == [(SNAPSHOT, 6, "reset")]
    assert list(heard[0].bids) == levels(hub)[1]
    assert len(heard[0].bids) == 6


def test_a_book_first_seen_mid_stream_is_built_from_the_bus() -> None:
    bus = InProcessBus(1000)
    published = bus.publish([event(0, SNAPSHOT, ((100, 1),), 0), event(0, DELTA, ((101, 2),), 0)], 1000)
    hub, heard = listening_hub(bus)
    hub.on_event(published[1])
    assert levels(hub) == (2, [(101, 2), (100, 1)], [], False)
    assert [(e.kind, e.seq, e.reason) for e in heard] == [(SNAPSHOT, 2, "reset")]


def test_bootstrap_rebuilds_a_book_whose_bus_sequence_is_below_the_replica() -> None:
    bus = InProcessBus(1000)
    hub, heard = listening_hub(bus)
    hub.on_event(event(1, SNAPSHOT, ((100, 1),), 1000))
    for seq in range(2, 11):
        hub.on_event(event(seq, DELTA, ((100 + seq, seq),), 1000 + seq))
    bus.publish([event(0, SNAPSHOT, ((7, 7),), 0), event(0, DELTA, ((6, 6),), 0)], 5000)  # the new sequence
    heard.clear()
    hub.bootstrap()  # after a lost subscription
    assert levels(hub) == (2, [(7, 7), (6, 6)], [], False)
    assert [(e.kind, e.seq, e.reason) for e in heard] == [(SNAPSHOT, 2, "reset")]


def test_bootstrap_catches_a_replica_up_with_the_missed_events_themselves() -> None:
    bus = InProcessBus(1000)
    hub, heard = listening_hub(bus)
    first = bus.publish([event(0, SNAPSHOT, ((100, 1),), 0), event(0, DELTA, ((101, 2),), 0)], 1000)
    hub.bootstrap()
    assert [(e.kind, e.seq, e.reason) for e in heard] == [(SNAPSHOT, 2, "reset")]  # the first build
    missed = bus.publish([event(0, DELTA, ((102, 3),), 0), event(0, DELTA, ((101, 0),), 0)], 2000)
    heard.clear()
    hub.bootstrap()
    assert heard == missed  # in order, as published: no reset needed
    assert levels(hub) == (4, [(102, 3), (100, 1)], [], False)
    heard.clear()
    hub.bootstrap()
    assert heard == []
    assert first[0].seq == 1


def test_a_rebuilt_replica_that_cannot_be_trusted_is_announced_stale() -> None:
    bus = InProcessBus(1000)
    hub, heard = listening_hub(bus)
    stale = event(0, STALE, (), 0)
    stale.reason = "checksum mismatch"
    bus.publish([event(0, SNAPSHOT, ((100, 1),), 0), event(0, DELTA, ((101, 1),), 0), stale], 1000)
    hub.bootstrap()
    assert [(e.kind, e.seq, e.reason) for e in heard] == [(STALE, 3, "reset")]
    assert levels(hub)[3] is True


def test_a_failing_listener_does_not_stop_the_others() -> None:
    hub, heard = listening_hub()

    def broken(_: BookEvent) -> None:
        raise RuntimeError("boom")

    hub._listeners.insert(0, broken)
    hub.on_event(event(1, SNAPSHOT, ((100, 1),), 1000))
    hub.on_event(event(2, DELTA, ((101, 1),), 1001))
    assert [e.seq for e in heard] == [1, 2]


class FlakyBus(InProcessBus):
    """The in-process bus, down while `is_down`: nothing is numbered or kept."""

    is_down = False

    def publish(self, events: list[BookEvent], publish_ts_ns: int) -> list[BookEvent]:
        if self.is_down:
            raise ConnectionError("bus down")
        return super().publish(events, publish_ts_ns)

    def publish_trades(self, trades: list[Trade]) -> None:
        if self.is_down:
            raise ConnectionError("bus down")
        super().publish_trades(trades)


def change(bids: tuple[Level, ...], *, is_reset: bool = False) -> BookChange:
    return BookChange("sim", "BTC-USDT", bids, (), is_reset, None, time.time_ns())


def flaky_publisher() -> tuple[FeedPublisher, FlakyBus, MarketDataHub]:
    bus = FlakyBus(1000)
    hub = MarketDataHub(bus)
    bus.subscribe(hub.on_event)
    listings = {("sim", "BTC-USDT"): Precision(2, 8)}
    return FeedPublisher(bus, listings, {"BTC-USDT": Precision(2, 8)}, time.time_ns), bus, hub


def test_after_a_failed_publish_every_book_is_republished_whole_first() -> None:
    publisher, bus, hub = flaky_publisher()
    publisher.handle([change(((100, 1),), is_reset=True), change(((101, 1),))])
    bus.is_down = True
    with pytest.raises(PublishFailed):
        publisher.handle([change(((102, 1),))])
    with pytest.raises(PublishFailed):
        publisher.handle([change(((100, 0),))])
    bus.is_down = False
    events = publisher.handle([change(((103, 1),))])
    by_book: dict[str, list[BookEvent]] = {}
    for e in events:
        by_book.setdefault(e.book, []).append(e)
    for book in ("sim:BTC-USDT", "consolidated:BTC-USDT"):
        reset, delta = by_book[book]
        assert (reset.kind, reset.seq, reset.reason) == (SNAPSHOT, 3, "reset")
        assert reset.bids == ((102, 1), (101, 1))  # the lost changes are in it
        assert (delta.kind, delta.seq, delta.bids) == (DELTA, 4, ((103, 1),))
        view = hub.view(book, None)
        assert view is not None
        assert (view.seq, view.bids) == (4, [(103, 1), (102, 1), (101, 1)])
    assert publisher.maintain() == []


def test_a_quiet_publisher_republishes_on_maintain_once_the_bus_is_back() -> None:
    publisher, bus, hub = flaky_publisher()
    publisher.handle([change(((100, 1),), is_reset=True)])
    bus.is_down = True
    with pytest.raises(PublishFailed):
        publisher.handle([change(((101, 1),))])
    with pytest.raises(PublishFailed):
        publisher.maintain()
    bus.is_down = False
    republished = publisher.maintain()
    assert sorted((e.book, e.kind, e.seq) for e in republished) == [
        ("consolidated:BTC-USDT", SNAPSHOT, 2),
        ("sim:BTC-USDT", SNAPSHOT, 2),
    ]
    view = hub.view("sim:BTC-USDT", None)
    assert view is not None
    assert view.bids == [(101, 1), (100, 1)]
    assert publisher.maintain() == []


def test_lost_trades_are_reported_and_the_book_events_still_count() -> None:
    publisher, bus, _ = flaky_publisher()
    publisher.handle([change(((100, 1),), is_reset=True)])

    def trades_down(trades: list[Trade]) -> None:
        raise ConnectionError("bus down")

    bus.publish_trades = trades_down
    trade = Trade("sim", "BTC-USDT", "1", 100, 1, "buy", None, time.time_ns())
    with pytest.raises(PublishFailed, match="1 trades"):
        publisher.handle([change(((101, 1),)), trade])
    assert publisher.replicas["sim:BTC-USDT"].seq == 2
    assert publisher.replicas["sim:BTC-USDT"].top(BID) == [(101, 1), (100, 1)]
    assert publisher.replicas["sim:BTC-USDT"].top(ASK) == []


def test_numbers_the_publisher_did_not_see_make_it_republish_the_book() -> None:
    """E.g. redis-py re-sent a pipeline after a dropped connection, so the bus numbered some events twice."""
    publisher, bus, hub = flaky_publisher()
    publisher.handle([change(((100, 1),), is_reset=True)])
    bus._seq["sim:BTC-USDT"] += 3  # numbers handed out that this publisher never saw
    jumped = publisher.handle([change(((101, 1),))])
    assert [(e.book, e.seq) for e in jumped] == [("sim:BTC-USDT", 5), ("consolidated:BTC-USDT", 2)]
    replica = publisher.replicas["sim:BTC-USDT"]
    assert (replica.seq, replica.top(BID)) == (5, [(101, 1), (100, 1)])  # still the connector's book
    republished = publisher.maintain()
    assert [(e.book, e.kind, e.seq, e.reason) for e in republished] == [("sim:BTC-USDT", SNAPSHOT, 6, "reset")]
    view = hub.view("sim:BTC-USDT", None)
    assert view is not None
    assert (view.seq, view.bids, view.is_stale) == (6, [(101, 1), (100, 1)], False)
