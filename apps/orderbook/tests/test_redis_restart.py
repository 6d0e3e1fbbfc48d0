"""Publisher → RedisBus → Redis → MarketDataHub through a Redis restart (a real redis-server, killed with -9).

Our Redis keeps nothing on disk: a restart loses every sequence counter, all history and checkpoints. Readers
must never be left silently behind: either the sequence continues above the old one (the publisher lived
on) or the hub notices that it went back (the publisher restarted too) and replaces its replica, telling
its listeners with a reset snapshot.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.orderbook.domain.book import ASK, BID, Level
from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, BookChange, BookEvent, BookStale
from apps.orderbook.domain.replica import BookReplica
from apps.orderbook.services.bus import LIVE_CHANNEL, RedisBus, channel
from apps.orderbook.services.hub import MarketDataHub, RedisHubListener
from apps.orderbook.services.publisher import FeedPublisher, Precision, PublishFailed
from apps.orderbook.services.runner import VenueConnection
from apps.orderbook.tests.conftest import ThrowawayRedis

SYMBOLS = ("BTC-USDT", "ETH-USDT")
HISTORY = 10_000


@dataclass
class Feed:
    """A venue connector's verified book of one symbol, changed at random: the truth to compare with."""

    symbol: str
    seed: int
    mid: int
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def snapshot(self) -> BookChange:
        self.bids = {self.mid - 1 - i: self.rng.randint(1, 10**8) for i in range(10)}
        self.asks = {self.mid + 1 + i: self.rng.randint(1, 10**8) for i in range(10)}
        return self._change(tuple(self.bids.items()), tuple(self.asks.items()), is_reset=True)

    def delta(self) -> BookChange:
        bids: list[Level] = []
        asks: list[Level] = []
        for _ in range(self.rng.randint(1, 3)):
            is_bid = self.rng.random() < 0.5
            book, out = (self.bids, bids) if is_bid else (self.asks, asks)
            price = self.mid - self.rng.randint(1, 15) if is_bid else self.mid + self.rng.randint(1, 15)
            if any(p == price for p, _ in out):
                continue
            qty = 0 if price in book and self.rng.random() < 0.3 else self.rng.randint(1, 10**8)
            if qty:
                book[price] = qty
            else:
                del book[price]
            out.append((price, qty))
        return self._change(tuple(bids), tuple(asks), is_reset=False)

    def top(self) -> tuple[list[Level], list[Level]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())

    def _change(self, bids: tuple[Level, ...], asks: tuple[Level, ...], *, is_reset: bool) -> BookChange:
        now = time.time_ns()
        return BookChange("sim", self.symbol, bids, asks, is_reset, now - 1000, now)


class Client:
    """A listener that keeps books by the stream contract, and fails on any gap it is not told about."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.books: dict[str, BookReplica] = {}
        self.resets: list[BookEvent] = []
        self.errors: list[str] = []

    def __call__(self, event: BookEvent) -> None:
        with self.lock:
            book = self.books.get(event.book)
            if event.reason == "reset":
                self.resets.append(event)
            if event.kind == SNAPSHOT or (event.kind == STALE and event.reason == "reset"):
                # Authoritative whatever its seq: replace the local book.
                book = self.books[event.book] = BookReplica(event.book, event.price_exp, event.size_exp)
                book.apply(event)
                return
            if book is None or event.seq != book.seq + 1:
                self.errors.append(f"{event.book}: {event.kind} {event.seq} after {book.seq if book else None}")
                return
            book.apply(event)

    def view(self, book: str) -> tuple[int, list[Level], list[Level]] | None:
        with self.lock:
            replica = self.books.get(book)
            return None if replica is None else (replica.seq, replica.top(BID), replica.top(ASK))


class Platform:
    """One feed runner's publisher and one web process's hub, both on the throwaway Redis."""

    def __init__(self, server: ThrowawayRedis, **client_options: object) -> None:
        self.server = server
        self.client_options = client_options
        self.feeds = {s: Feed(s, seed=i, mid=100_000 * (i + 1)) for i, s in enumerate(SYMBOLS)}
        self.publisher = self.new_publisher()
        self.hub = MarketDataHub(RedisBus(self.redis(), HISTORY))
        self.client = Client()
        self.hub.add_listener(self.client)
        self.listener = RedisHubListener(self.hub, self.redis())
        self.listener.start()
        assert self.listener.is_subscribed.wait(timeout=10)
        self.published: dict[str, list[BookEvent]] = {}

    def redis(self, **options: object) -> redis.Redis:
        return redis.Redis.from_url(self.server.url, socket_connect_timeout=1, **{**self.client_options, **options})

    def new_publisher(self) -> FeedPublisher:
        """A feed runner (re)started: a new process, so a new bus with no memory of past sequences."""
        listings = {("sim", s): Precision(2, 8) for s in SYMBOLS}
        return FeedPublisher(
            RedisBus(self.redis(), HISTORY), listings, {s: Precision(2, 8) for s in SYMBOLS}, time.time_ns
        )

    def handle(self, outputs: list[BookChange | BookStale]) -> list[BookEvent]:
        events = self.publisher.handle(outputs)
        for event in events:
            self.published.setdefault(event.book, []).append(event)
        return events

    def start_feeds(self) -> None:
        self.handle([feed.snapshot() for feed in self.feeds.values()])

    def trade(self, n: int, symbols: tuple[str, ...] = SYMBOLS) -> None:
        for _ in range(n):
            self.handle([self.feeds[s].delta() for s in symbols])

    def last_seq(self, book: str) -> int:
        return self.published[book][-1].seq

    def books(self) -> list[str]:
        return [f"{venue}:{s}" for s in SYMBOLS for venue in ("sim", "consolidated")]

    def wait_until_consistent(self, timeout: float = 15) -> None:
        """The hub's replica and the listening client equal the feed's book at the publisher's last seq."""
        deadline = time.monotonic() + timeout
        while True:
            problems = self.inconsistencies()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise AssertionError("; ".join(problems))
            time.sleep(0.02)

    def inconsistencies(self) -> list[str]:
        problems = []
        for book in self.books():
            symbol = book.partition(":")[2]
            bids, asks = self.feeds[symbol].top()
            seq = self.publisher.replicas[book].seq
            view = self.hub.view(book, None)
            if view is None or (view.seq, view.bids, view.asks, view.is_stale) != (seq, bids, asks, False):
                problems.append(f"hub {book} at {view.seq if view else None}, publisher at {seq}")
            if self.client.view(book) != (seq, bids, asks):
                problems.append(f"client {book} differs at publisher seq {seq}")
        return problems

    def stop(self) -> None:
        self.listener.stop()


@pytest.fixture
def platform(throwaway_redis: ThrowawayRedis) -> Iterator[Platform]:
    platform = Platform(throwaway_redis)
    yield platform
    platform.stop()


def assert_gap_free_from(events: list[BookEvent], first: int) -> None:
    assert [e.seq for e in events] == list(range(first, first + len(events)))


def test_after_a_redis_restart_sequences_continue_and_the_hub_follows(
    platform: Platform, throwaway_redis: ThrowawayRedis
) -> None:
    platform.start_feeds()
    platform.trade(200)
    platform.wait_until_consistent()
    before = {book: platform.last_seq(book) for book in platform.books()}

    throwaway_redis.restart()  # every counter, all history and checkpoints gone
    platform.trade(50, symbols=("BTC-USDT",))  # ETH-USDT stays quiet

    bus = platform.hub.bus
    for book in platform.books():
        history = bus.history(book, 0, HISTORY)
        # The first event on the new Redis is a snapshot of the whole book, numbered after the old ones.
        assert history[0].seq == before[book] + 1, book
        assert history[0].kind == SNAPSHOT
        assert history[0].reason == "reset"
        assert_gap_free_from(history, before[book] + 1)
        published_after = [e for e in platform.published[book] if e.seq > before[book]]
        assert [e.seq for e in published_after] == [e.seq for e in history], book
        assert bus.load_checkpoint(book) is not None
    assert platform.last_seq("sim:BTC-USDT") == before["sim:BTC-USDT"] + 50  # the reset took the first delta in
    platform.wait_until_consistent()
    # Every book's listener saw the reset, and never a gap it was not told about.
    assert {e.book for e in platform.client.resets} >= set(platform.books())
    assert platform.client.errors == []


def test_when_redis_and_the_feed_runner_both_restart_the_hub_takes_the_new_sequence(
    platform: Platform, throwaway_redis: ThrowawayRedis
) -> None:
    platform.start_feeds()
    platform.trade(300)
    platform.wait_until_consistent()
    old = platform.hub.view("sim:BTC-USDT", None)
    assert old is not None
    assert old.seq > 300

    throwaway_redis.restart()
    platform.publisher = platform.new_publisher()  # the runner restarted too: sequences start again at 1
    platform.published.clear()
    platform.start_feeds()  # a restarted connector starts from a fresh venue snapshot
    platform.trade(40)

    for book in platform.books():
        assert platform.published[book][0].seq == 1
        assert platform.published[book][0].kind == SNAPSHOT
        assert platform.last_seq(book) < old.seq  # so an unaware hub would ignore all of them
    platform.wait_until_consistent()
    resets = {e.book: e for e in platform.client.resets}
    assert set(resets) == set(platform.books())
    assert all(e.kind == SNAPSHOT and e.seq < old.seq for e in resets.values())
    assert platform.client.errors == []


def test_the_hub_notices_a_sequence_reset_on_the_live_snapshot(
    platform: Platform, throwaway_redis: ThrowawayRedis
) -> None:
    """Both restarted, and the hub is back on the bus before the new runner's first snapshot: the live
    snapshot at seq 1, published after the replica's last event, replaces the replica."""
    platform.start_feeds()
    platform.trade(100)
    platform.wait_until_consistent()
    before = platform.last_seq("sim:ETH-USDT")

    throwaway_redis.restart()
    wait_for_the_hub_to_subscribe(platform, throwaway_redis)
    platform.publisher = platform.new_publisher()
    platform.published.clear()
    platform.start_feeds()
    platform.trade(5)
    platform.wait_until_consistent()
    eth = [e for e in platform.client.resets if e.book == "sim:ETH-USDT"]
    assert eth
    assert eth[-1].seq < before
    assert platform.client.errors == []


def wait_for_the_hub_to_subscribe(platform: Platform, server: ThrowawayRedis) -> None:
    """Until the listener's new subscription has held for a moment (the old one may flicker on as it dies)."""
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 15
    held_since: float | None = None
    while True:
        numsub = client.pubsub_numsub(channel(LIVE_CHANNEL, client))
        now = time.monotonic()
        if numsub and numsub[0][1] >= 1 and platform.listener.is_subscribed.is_set():
            held_since = held_since or now
            if now - held_since > 0.5:
                return
        else:
            held_since = None
        assert now < deadline, "the hub never subscribed again"
        time.sleep(0.02)


def test_a_quiet_publisher_republishes_its_books_once_it_sees_redis_lost_them(
    platform: Platform, throwaway_redis: ThrowawayRedis
) -> None:
    platform.start_feeds()
    platform.trade(30)
    platform.wait_until_consistent()
    before = {book: platform.last_seq(book) for book in platform.books()}

    throwaway_redis.restart()
    republished = platform.publisher.maintain()  # what the runner does every second

    assert sorted(e.book for e in republished) == sorted(platform.books())
    assert all(e.kind == SNAPSHOT and e.seq == before[e.book] + 1 for e in republished)
    assert platform.publisher.maintain() == []  # once
    for event in republished:
        platform.published[event.book].append(event)
    platform.wait_until_consistent()
    late = MarketDataHub(RedisBus(platform.redis(), HISTORY))  # a web process started after the restart
    late.bootstrap()
    for book in platform.books():
        view, fresh = platform.hub.view(book, None), late.view(book, None)
        assert view is not None
        assert fresh is not None
        assert (fresh.seq, fresh.bids, fresh.asks, fresh.is_stale) == (view.seq, view.bids, view.asks, False)


def test_while_redis_is_down_nothing_is_lost_and_the_books_come_back_as_snapshots(
    throwaway_redis: ThrowawayRedis,
) -> None:
    """A bus without client retries, so a publish fails at once: the runner logs it and carries on, the
    publisher keeps what it could not send, and re-publishes every book whole once Redis is back."""
    platform = Platform(throwaway_redis, retry=Retry(NoBackoff(), 0), socket_timeout=1)
    try:
        platform.start_feeds()
        platform.trade(20)
        platform.wait_until_consistent()
        before = {book: platform.last_seq(book) for book in platform.books()}

        throwaway_redis.kill()
        with pytest.raises(PublishFailed):
            platform.trade(1)
        connection = VenueConnection("sim", None, "", "", platform.publisher)
        for _ in range(5):  # the runner's path: logged, not raised, the connection goes on
            connection._dispatch([platform.feeds["BTC-USDT"].delta()])
        with pytest.raises(PublishFailed):
            platform.publisher.maintain()

        throwaway_redis.start()
        republished = retry_until(platform.publisher.maintain)
        assert {e.book for e in republished} == set(platform.books())
        assert all(e.kind == SNAPSHOT and e.reason == "reset" for e in republished)
        for event in republished:
            assert event.seq == before[event.book] + 1
            platform.published[event.book].append(event)
        platform.trade(10)
        platform.wait_until_consistent()
        assert platform.client.errors == []
    finally:
        platform.stop()


def retry_until(call: Callable[[], list[BookEvent]], timeout: float = 10) -> list[BookEvent]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except PublishFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_bus_refuses_a_delta_it_cannot_number_after_the_sequence_it_handed_out(
    throwaway_redis: ThrowawayRedis,
) -> None:
    client = redis.Redis.from_url(throwaway_redis.url)
    bus = RedisBus(client, HISTORY)

    def event(kind: str, bids: tuple[Level, ...]) -> BookEvent:
        return BookEvent("sim:BTC-USDT", 0, kind, bids, (), 2, 8, None, time.time_ns(), 0)

    assert [e.seq for e in bus.publish([event(SNAPSHOT, ((1, 1),)), event(DELTA, ((1, 2),))], 10)] == [1, 2]
    assert bus.lost_books(check=True) == set()
    client.flushall()  # what a restart leaves: nothing
    assert bus.lost_books(check=True) == {"sim:BTC-USDT"}
    assert bus.lost_books() == set()  # reported once
    delta = event(DELTA, ((1, 3),))
    assert bus.publish([delta], 20) == []
    assert delta.seq == 0
    assert bus.bounds("sim:BTC-USDT") == (0, 0)  # not stored, not published
    assert bus.lost_books() == {"sim:BTC-USDT"}
    reset = bus.publish([event(SNAPSHOT, ((1, 3),)), event(DELTA, ((1, 4),))], 30)
    assert [e.seq for e in reset] == [3, 4]  # re-based above the last sequence handed out
    assert bus.lost_books() == {"sim:BTC-USDT"}
    assert bus.bounds("sim:BTC-USDT") == (3, 4)
