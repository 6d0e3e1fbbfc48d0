"""MarketDataHub: in every web process, one bus subscription and an in-memory replica of each book.

Reads (REST snapshots, WebSocket fan-out) come from the replicas, so they never wait on Redis or the
database. A replica bootstraps from the latest checkpoint plus history; a gap in the live events
(a lost Pub/Sub message, a Redis restart) rebuilds it the same way, and until then it reads as stale.

A book's sequence can also go back: Redis (which keeps nothing on disk) and the feed runner both
restarted, and the new runner numbers from 1 again. The hub notices instead of ignoring every event
below its replica's seq: an event at or below the replica's seq but published later than the replica's
last event (`publish_ts_ns`) is not a duplicate. A snapshot then replaces the replica; any other event
rebuilds it from the bus. Duplicates (the subscribe-then-bootstrap overlap) were published at or before
the replica's last event and stay ignored. A re-bootstrap (after a lost subscription) catches a replica up
from history only when history still holds the replica's own last event (same seq, same publish time) or
its next event is a snapshot; otherwise, e.g. when the bus's latest seq is below the replica's, the
replica is rebuilt.

Listener contract (`add_listener`; listeners run on the hub's thread, one event at a time, in order):

- In the normal case a listener receives each event the hub applied, as published, in sequence order.
- Whenever the hub builds or replaces a replica other than by applying the next event in order (the first
  bootstrap, a re-bootstrap after a lost subscription, a rebuild after a gap, a sequence reset, a book first
  seen mid-stream), it does not forward the event that triggered it: it calls every listener once with the
  rebuilt replica as one event, `reason="reset"`, `seq` = the replica's seq, `publish_ts_ns` = the
  publish time of the replica's last event. It is a SNAPSHOT (the whole book) when the replica is
  trusted, or a STALE event (levels: the last known, not to be trusted) when it is not, e.g. the venue
  book is resynchronising or history no longer reached back to the checkpoint; the next SNAPSHOT follows.
- Listeners must treat a SNAPSHOT as authoritative whatever its seq, which may be lower than the last one
  they saw (a sequence reset) or skip ahead (a gap rebuilt): replace the local book and take its seq.
  Later events continue from that seq.
- Events the hub ignores (duplicates, already applied) reach no listener. An exception in a listener is
  logged and does not stop the hub or the other listeners.
- A feed runner that re-publishes its books after a Redis restart or a failed publish sends them as
  SNAPSHOT events with `reason="reset"` too; those arrive in order, as ordinary events.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.orderbook.domain.book import ASK, BID, Level
from apps.orderbook.domain.events import SNAPSHOT, BookEvent, Trade
from apps.orderbook.domain.replica import BookReplica, SequenceGap
from apps.orderbook.domain.wire import decode_event, decode_trade
from apps.orderbook.services.bus import LIVE_CHANNEL, TRADES_CHANNEL, MarketDataBus, channel

logger = logging.getLogger(__name__)
BOOTSTRAP_BATCH = 10_000
RESET = "reset"


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
        self._trade_listeners: list[Callable[[Trade], None]] = []

    def add_listener(self, listener: Callable[[BookEvent], None]) -> None:
        """Call `listener` with every applied event and with a reset event per rebuilt replica (module doc)."""
        self._listeners.append(listener)

    def on_event(self, event: BookEvent) -> None:
        with self._lock:
            replica = self._replicas.get(event.book)
            try:
                if replica is None:
                    forward = self._first_locked(event)
                elif replica.apply(event):
                    forward = event  # the next event in order: the common case
                elif event.publish_ts_ns > replica.publish_ts_ns:
                    forward = self._reset_locked(event, replica)
                else:
                    return  # a duplicate
            except SequenceGap:
                logger.warning("hub: gap on %s at %s; rebuilding from checkpoint and history", event.book, event.seq)
                forward = self._recover_locked(event)
        self._notify(forward)

    def bootstrap(self) -> None:
        """Build every known book from its checkpoint and history (at start, and after a reconnect); a replica
        that is still of the same sequence catches up from history instead."""
        for book in self.bus.books():
            with self._lock:
                forward = self._resume_locked(book)
            for event in forward:
                self._notify(event)

    def add_trade_listener(self, listener: Callable[[Trade], None]) -> None:
        """Call `listener` with every trade as it arrives (trades are not sequenced or kept)."""
        self._trade_listeners.append(listener)

    def on_trade(self, trade: Trade) -> None:
        for listener in self._trade_listeners:
            try:
                listener(trade)
            except Exception:
                logger.exception("hub: trade listener %r failed on %s:%s", listener, trade.venue, trade.symbol)

    def _notify(self, event: BookEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("hub: listener %r failed on %s seq %s", listener, event.book, event.seq)

    def _first_locked(self, event: BookEvent) -> BookEvent:
        """A book not seen before: its start as it comes, or else (mid-stream) built from the bus."""
        if event.kind == SNAPSHOT or event.seq == 1:
            replica = self._replicas[event.book] = BookReplica(event.book, event.price_exp, event.size_exp)
            replica.apply(event)
            return event
        return self._recover_locked(event)

    def _reset_locked(self, event: BookEvent, replica: BookReplica) -> BookEvent:
        """An event at or below the replica's seq, published after the replica's last event: the book's
        sequence was reset (Redis and the feed runner restarted)."""
        logger.warning(
            "hub: %s went back from seq %s to %s (a sequence reset); replacing the replica",
            event.book,
            replica.seq,
            event.seq,
        )
        if event.kind != SNAPSHOT:
            return self._recover_locked(event)
        replica = self._replicas[event.book] = BookReplica(event.book, event.price_exp, event.size_exp)
        replica.apply(event)
        return reset_event(replica)

    def _recover_locked(self, event: BookEvent) -> BookEvent:
        """Rebuild a book from the bus; the live event that found the problem is applied if it is the next."""
        replica = self._rebuild_locked(event.book)
        if event.seq > replica.seq:
            try:
                replica.apply(event)
            except SequenceGap:
                replica.is_stale = True  # the bus is behind its own live event: stale until the next snapshot
        return reset_event(replica)

    def _resume_locked(self, book: str) -> list[BookEvent]:
        """Catch a replica up from history when that continues it; else rebuild it (a reset)."""
        replica = self._replicas.get(book)
        if replica is not None and replica.seq:
            batch = self.bus.history(book, replica.seq - 1, BOOTSTRAP_BATCH)
            ours = bool(batch) and batch[0].seq == replica.seq and batch[0].publish_ts_ns == replica.publish_ts_ns
            after = batch[1:] if batch and batch[0].seq == replica.seq else batch
            # History continues the replica when it holds the replica's own last event (same seq, same publish
            # time), or when its next event is a snapshot, which replaces the book whatever came before.
            if (ours and not after) or (
                after and after[0].seq == replica.seq + 1 and (ours or after[0].kind == SNAPSHOT)
            ):
                applied: list[BookEvent] = []
                try:
                    while True:
                        applied += [e for e in batch if replica.apply(e)]
                        if len(batch) < BOOTSTRAP_BATCH:
                            return applied
                        batch = self.bus.history(book, replica.seq, BOOTSTRAP_BATCH)
                except SequenceGap:
                    pass  # history has a hole: rebuild below
            logger.warning("hub: %s at seq %s does not continue on the bus; rebuilding it", book, replica.seq)
        replica = self._rebuild_locked(book)
        return [reset_event(replica)] if replica.seq else []

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


def reset_event(replica: BookReplica) -> BookEvent:
    """A rebuilt replica as the one event listeners get for it (see the module's listener contract)."""
    event = replica.snapshot_event(replica.publish_ts_ns)
    event.reason = RESET
    return event


class RedisHubListener:
    """The process's one subscription: live events from Redis into the hub, re-bootstrapping on reconnect.

    `client` must be the listener's own: its retries are turned off, because redis-py would otherwise
    reconnect and resubscribe silently, and the events published meanwhile would be lost without the
    re-bootstrap that a visible error leads to here.
    """

    def __init__(self, hub: MarketDataHub, client: redis.Redis) -> None:
        self.hub = hub
        client.set_retry(Retry(NoBackoff(), 0))
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
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                live, trades = channel(LIVE_CHANNEL, self.client), channel(TRADES_CHANNEL, self.client)
                pubsub.subscribe(live, trades)
                # Subscribed first, then bootstrapped: events published in between arrive twice and the
                # replica ignores the ones it already has, so nothing falls between the two.
                self.hub.bootstrap()
                self.is_subscribed.set()
                backoff = 0.1
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message["type"] == "message":
                        if message["channel"] == trades.encode():
                            self.hub.on_trade(decode_trade(message["data"]))
                        else:
                            self.hub.on_event(decode_event(message["data"]))
            except redis.RedisError as exc:
                self.is_subscribed.clear()
                logger.warning("hub: Redis subscription lost (%s); retrying in %.1f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
