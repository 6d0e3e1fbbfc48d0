"""MarketDataHub: in every web process, one bus subscription and an in-memory replica of each book.

Reads (REST snapshots, WebSocket fan-out) come from the replicas, so they never wait on Redis or the
database. A replica bootstraps from the latest checkpoint plus history; a gap in the live events
(a lost Pub/Sub message, a Redis restart) rebuilds it the same way, and until then it reads as stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from apps.orderbook.domain.book import ASK, BID, Level
from apps.orderbook.domain.events import BookEvent
from apps.orderbook.domain.replica import BookReplica, SequenceGap
from apps.orderbook.domain.wire import decode_event
from apps.orderbook.services.bus import LIVE_CHANNEL, MarketDataBus

logger = logging.getLogger(__name__)
BOOTSTRAP_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class BookView:
    book: str
    seq: int
    bids: list[Level]
    asks: list[Level]
    price_exp: int
    size_exp: int
    is_stale: bool
    exchange_ts_ns: int | None
    publish_ts_ns: int
    total_bid_levels: int
    total_ask_levels: int


class MarketDataHub:
    def __init__(self, bus: MarketDataBus) -> None:
        self.bus = bus
        self._lock = threading.Lock()
        self._replicas: dict[str, BookReplica] = {}
        self._listeners: list[Callable[[BookEvent], None]] = []

    def add_listener(self, listener: Callable[[BookEvent], None]) -> None:
        self._listeners.append(listener)

    def on_event(self, event: BookEvent) -> None:
        with self._lock:
            replica = self._replicas.get(event.book)
            if replica is None:
                replica = self._replicas[event.book] = BookReplica(event.book, event.price_exp, event.size_exp)
            try:
                applied = replica.apply(event)
            except SequenceGap:
                logger.warning("hub: gap on %s at %s; rebuilding from checkpoint and history", event.book, event.seq)
                replica = self._rebuild_locked(event.book)
                applied = replica.seq >= event.seq
        if applied:
            for listener in self._listeners:
                listener(event)

    def bootstrap(self) -> None:
        """Build every known book from its checkpoint and history (at start, and after a reconnect)."""
        for book in self.bus.books():
            with self._lock:
                self._rebuild_locked(book)

    def _rebuild_locked(self, book: str) -> BookReplica:
        checkpoint = self.bus.load_checkpoint(book)
        replica = BookReplica(book, checkpoint.price_exp if checkpoint else 0, checkpoint.size_exp if checkpoint else 0)
        if checkpoint is not None:
            replica.apply(checkpoint)
        while True:
            batch = self.bus.history(book, replica.seq, BOOTSTRAP_BATCH)
            if not batch:
                break
            try:
                for event in batch:
                    replica.apply(event)
            except SequenceGap:
                # History no longer reaches the checkpoint: stale until the next snapshot event.
                replica.is_stale = True
                break
            if len(batch) < BOOTSTRAP_BATCH:
                break
        self._replicas[book] = replica
        return replica

    def view(self, book: str, depth: int | None) -> BookView | None:
        with self._lock:
            replica = self._replicas.get(book)
            if replica is None:
                return None
            return BookView(
                book,
                replica.seq,
                replica.top(BID, depth),
                replica.top(ASK, depth),
                replica.price_exp,
                replica.size_exp,
                replica.is_stale,
                replica.exchange_ts_ns,
                replica.publish_ts_ns,
                replica.depth(BID),
                replica.depth(ASK),
            )

    def books(self) -> list[str]:
        with self._lock:
            return sorted(self._replicas)


class RedisHubListener:
    """The process's one subscription: live events from Redis into the hub, re-bootstrapping on reconnect."""

    def __init__(self, hub: MarketDataHub, client: redis.Redis) -> None:
        self.hub = hub
        self.client = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_subscribed = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="md-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(LIVE_CHANNEL)
                # Subscribed first, then bootstrapped: events published in between arrive twice and the
                # replica ignores the ones it already has, so nothing falls between the two.
                self.hub.bootstrap()
                self.is_subscribed.set()
                backoff = 0.1
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message["type"] == "message":
                        self.hub.on_event(decode_event(message["data"]))
                pubsub.close()
            except redis.RedisError as exc:
                self.is_subscribed.clear()
                logger.warning("hub: Redis subscription lost (%s); retrying in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
