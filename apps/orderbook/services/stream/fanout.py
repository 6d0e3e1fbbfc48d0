"""StreamHub: the process's WebSocket fan-out of book events, fed by the MarketDataHub's one subscription.

Events reach the hub on its thread (the Redis listener, or the feed thread when embedded); the stream
hub queues them and drains them on the server's event loop, where each book keeps its own replica and
each depth in use keeps its window. Per event, every (depth, format) in use is encoded once and the same
frame is written to every connection subscribed to it: the cost of a delivery is one transport write,
not a channel-layer message. Streams at a depth keep their recent frames so a reconnecting client can
resume at that depth; full-depth streams resume from the bus history.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque

from django.conf import settings

from apps.orderbook.domain.book import ASK, BID, Level
from apps.orderbook.domain.events import SNAPSHOT, STALE, BookEvent, Trade, book_id
from apps.orderbook.domain.replica import BookReplica, SequenceGap
from apps.orderbook.domain.window import touches_window, window_delta
from apps.orderbook.services import latency
from apps.orderbook.services.bus import MarketDataBus
from apps.orderbook.services.hub import MarketDataHub
from apps.orderbook.services.publisher import CONSOLIDATED
from apps.orderbook.services.stream.edge import Edge, Frame
from apps.orderbook.services.stream.frames import FORMATS, BookMeta, book_frame, heartbeat_frame, trade_frame

logger = logging.getLogger(__name__)

# Snapshot reasons (docs/streaming.md).
SUBSCRIBE, RESYNC, HISTORY, RESET = "subscribe", "resync", "history", "reset"


class Connection:
    """One WebSocket connection: its writer, its format and its subscriptions by book."""

    __slots__ = ("edge", "fmt", "subscriptions")

    def __init__(self, edge: Edge, fmt: str) -> None:
        self.edge = edge
        self.fmt = fmt
        self.subscriptions: dict[str, Subscription] = {}


class Subscription:
    """A connection's interest in one book at one depth. Frames flow once it has had its first snapshot
    (or its resumed deltas); while a resume is being fetched they wait in `buffer`."""

    __slots__ = ("buffer", "conn", "depth", "has_started", "stream", "wants_trades")

    def __init__(self, conn: Connection, stream: BookStream, depth: DepthStream, *, wants_trades: bool) -> None:
        self.conn = conn
        self.stream = stream
        self.depth = depth
        self.wants_trades = wants_trades
        self.has_started = False
        self.buffer: list[tuple[int, Frame]] | None = None


class DepthStream:
    """One book at one depth (None = full): its window, its subscribers per format, its recent frames."""

    __slots__ = ("asks", "bids", "depth", "idle_since", "recent", "snapshot_cache", "subscribers")

    def __init__(self, depth: int | None, replica: BookReplica, recent_frames: int) -> None:
        self.depth = depth
        self.bids: list[Level] = replica.top(BID, depth) if depth is not None else []
        self.asks: list[Level] = replica.top(ASK, depth) if depth is not None else []
        self.subscribers: dict[str, set[Subscription]] = {fmt: set() for fmt in FORMATS}
        self.recent: deque[BookEvent] = deque(maxlen=recent_frames)
        self.snapshot_cache: dict[tuple[str, str], tuple[int, Frame]] = {}
        self.idle_since: float | None = None

    def has_subscribers(self) -> bool:
        return any(self.subscribers.values())


class BookStream:
    __slots__ = ("depths", "meta", "replica")

    def __init__(self, meta: BookMeta, replica: BookReplica) -> None:
        self.meta = meta
        self.replica = replica
        self.depths: dict[int | None, DepthStream] = {}


def replica_from(hub: MarketDataHub, book: str) -> BookReplica:
    """A private copy of the hub's replica (the stream hub applies events on its own thread)."""
    view = hub.view(book, None)
    if view is None:
        return BookReplica(book, 0, 0)
    replica = BookReplica(book, view.price_exp, view.size_exp)
    replica.apply(
        BookEvent(
            book, view.seq, SNAPSHOT, tuple(view.bids), tuple(view.asks), view.price_exp, view.size_exp,
            view.exchange_ts_ns, view.publish_ts_ns, view.publish_ts_ns,
        )
    )  # fmt: skip
    replica.is_stale = view.is_stale
    return replica


class StreamHub:
    def __init__(self, hub: MarketDataHub, bus: MarketDataBus, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.bus = bus
        self.loop = loop
        self.books: dict[str, BookStream] = {}
        self._pending: deque[tuple[BookEvent | Trade, int]] = deque()
        self._is_scheduled = False
        self.recent_frames = settings.HFT_WS_RESUME_FRAMES
        hub.add_listener(self._on_hub_event)
        hub.add_trade_listener(self._on_hub_event)
        self._heartbeat = loop.create_task(self._beat())

    # -- events in -------------------------------------------------------------------------------

    def _on_hub_event(self, event: BookEvent | Trade) -> None:
        """Any thread: queue the event and wake the loop once per batch."""
        if self.loop.is_closed():
            return
        self._pending.append((event, time.time_ns()))
        if not self._is_scheduled:
            self._is_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._is_scheduled = False
        pending = self._pending
        while pending:
            event, edge_ns = pending.popleft()
            if isinstance(event, Trade):
                self._trade(event)
                continue
            stream = self.books.get(event.book)
            if stream is not None:
                try:
                    self._apply(stream, event, edge_ns)
                except Exception:
                    # Never leave the rest of the batch behind; the book's clients get a fresh start.
                    logger.exception("stream: event %s of %s failed; resetting its subscribers", event.seq, event.book)
                    stream.replica = replica_from(self.hub, event.book)
                    self._reset_all(stream)

    def _apply(self, stream: BookStream, event: BookEvent, edge_ns: int) -> None:
        replica = stream.replica
        if event.reason == RESET and event.seq <= replica.seq:
            # The hub rebuilt its replica (a gap in its feed, a Redis restart): the event is the whole book,
            # whatever its sequence, trusted (SNAPSHOT) or not (STALE).
            stream.replica = replica = BookReplica(event.book, event.price_exp, event.size_exp)
            replica.apply(
                BookEvent(
                    event.book, event.seq, SNAPSHOT, event.bids, event.asks, event.price_exp, event.size_exp,
                    event.exchange_ts_ns, event.receive_ts_ns, event.publish_ts_ns, RESET,
                )
            )  # fmt: skip
            replica.is_stale = event.kind == STALE
            self._reset_all(stream)
            return
        try:
            if not replica.apply(event):
                return
        except SequenceGap:
            # The hub rebuilds on a gap and tells us with a reset snapshot; until then, copy its replica.
            logger.warning("stream: gap on %s at %s; re-copying the hub's replica", event.book, event.seq)
            stream.replica = replica_from(self.hub, event.book)
            self._reset_all(stream)
            return
        sent = 0
        for depth in stream.depths.values():
            sent += self._emit(stream, depth, event)
        if sent:
            now = time.time_ns()
            latency.record_stage(event.book, "edge_to_send", now - edge_ns)
            latency.record_stage(event.book, "publish_to_send", now - event.publish_ts_ns)

    def _emit(self, stream: BookStream, depth: DepthStream, event: BookEvent) -> int:
        """Encode the event once per format in use at this depth and write it to every subscriber."""
        kind = event.kind
        if depth.depth is not None and kind != STALE:
            bids = self._window(stream, depth, BID, event.bids, kind)
            asks = self._window(stream, depth, ASK, event.asks, kind)
            event = BookEvent(
                event.book, event.seq, kind, bids, asks, event.price_exp, event.size_exp,
                event.exchange_ts_ns, event.receive_ts_ns, event.publish_ts_ns, event.reason,
            )  # fmt: skip
        if kind == SNAPSHOT:
            depth.recent.clear()  # resuming across a reset is the same as taking this snapshot
        depth.recent.append(event)
        reason = RESET if kind == SNAPSHOT else ""
        writes = 0
        for fmt, subscribers in depth.subscribers.items():
            if not subscribers:
                continue
            frame = book_frame(fmt, stream.meta, event, reason)
            for sub in subscribers:
                if sub.buffer is not None:
                    sub.buffer.append((event.seq, frame))
                elif sub.has_started or kind == SNAPSHOT:
                    sub.has_started = True
                    sub.conn.edge.write(frame)
                    writes += 1
        return writes

    def _trade(self, trade: Trade) -> None:
        """A venue's trade to the subscribers that asked for trades, of its venue's book and the consolidated one."""
        for book in (book_id(trade.venue, trade.symbol), book_id(CONSOLIDATED, trade.symbol)):
            stream = self.books.get(book)
            if stream is None:
                continue
            frames: dict[str, Frame | None] = {}
            for depth in stream.depths.values():
                for fmt, subscribers in depth.subscribers.items():
                    for sub in subscribers:
                        if sub.wants_trades and sub.has_started and sub.buffer is None:
                            if fmt not in frames:
                                frames[fmt] = trade_frame(fmt, stream.meta, trade)
                            frame = frames[fmt]
                            if frame is not None:
                                sub.conn.edge.write(frame)

    @staticmethod
    def _window(
        stream: BookStream, depth: DepthStream, side: str, changes: tuple[Level, ...], kind: str
    ) -> tuple[Level, ...]:
        """The side's levels to send at this depth: the whole window for a snapshot, else what changed in it."""
        n = depth.depth
        assert n is not None
        window = depth.bids if side == BID else depth.asks
        if kind != SNAPSHOT and not touches_window(changes, window, n, is_bid=side == BID):
            return ()
        new = stream.replica.top(side, n)
        if side == BID:
            depth.bids = new
        else:
            depth.asks = new
        return tuple(new) if kind == SNAPSHOT else window_delta(window, new)

    def _reset_all(self, stream: BookStream) -> None:
        for depth in stream.depths.values():
            depth.recent.clear()
            depth.snapshot_cache.clear()  # a rebuilt book may have the sequence of a cached snapshot
            depth.bids = stream.replica.top(BID, depth.depth) if depth.depth is not None else []
            depth.asks = stream.replica.top(ASK, depth.depth) if depth.depth is not None else []
            for subscribers in depth.subscribers.values():
                for sub in subscribers:
                    sub.buffer = None
                    self.send_snapshot(stream, sub, RESET)

    # -- subscriptions (called on the loop) -----------------------------------------------------

    def subscribe(self, conn: Connection, meta: BookMeta, depth: int | None, *, wants_trades: bool) -> Subscription:
        stream = self.books.get(meta.book)
        if stream is None:
            stream = self.books[meta.book] = BookStream(meta, replica_from(self.hub, meta.book))
        depth_stream = stream.depths.get(depth)
        if depth_stream is None:
            depth_stream = stream.depths[depth] = DepthStream(depth, stream.replica, self.recent_frames)
        depth_stream.idle_since = None
        sub = Subscription(conn, stream, depth_stream, wants_trades=wants_trades)
        conn.subscriptions[meta.book] = sub
        depth_stream.subscribers[conn.fmt].add(sub)
        return sub

    def start(self, sub: Subscription, since: int | None, history_allowed: int) -> None:
        """First frames of a subscription: a snapshot, or (with `since`) the missed deltas, then live."""
        stream = sub.stream
        latest = stream.replica.seq
        if latest == 0:
            return  # no data yet: the book's first snapshot event starts it
        if since is None:
            self.send_snapshot(stream, sub, SUBSCRIBE)
        elif since > latest or latest - since > history_allowed or stream.replica.is_stale:
            self.send_snapshot(stream, sub, HISTORY)
        elif not self._resume_from_recent(stream, sub, since):
            if sub.depth.depth is None:
                sub.buffer = []
                self.loop.create_task(self._resume_from_bus(stream, sub, since, latest))
            else:
                self.send_snapshot(stream, sub, HISTORY)

    def _resume_from_recent(self, stream: BookStream, sub: Subscription, since: int) -> bool:
        recent = sub.depth.recent
        if since == stream.replica.seq:
            sub.has_started = True
            return True
        if not recent or recent[0].seq > since + 1 or recent[-1].seq != stream.replica.seq:
            return False
        for event in recent:
            if event.seq > since:
                sub.conn.edge.write(book_frame(sub.conn.fmt, stream.meta, event, RESET))
        sub.has_started = True
        return True

    async def _resume_from_bus(self, stream: BookStream, sub: Subscription, since: int, latest: int) -> None:
        try:
            events = await asyncio.to_thread(self.bus.history, stream.meta.book, since, latest - since)
        except Exception:
            logger.warning("stream: history of %s unavailable for a resume", stream.meta.book, exc_info=True)
            events = []
        if sub.buffer is None or sub not in sub.depth.subscribers[sub.conn.fmt]:
            return  # reset, resynced or unsubscribed meanwhile: it has had its snapshot, or wants nothing
        buffered, sub.buffer = sub.buffer, None
        expected = since + 1
        if events and events[0].seq == expected and events[-1].seq - expected + 1 == len(events):
            for event in events:
                sub.conn.edge.write(book_frame(sub.conn.fmt, stream.meta, event, RESET))
            last = events[-1].seq
        else:
            self.send_snapshot(stream, sub, HISTORY)
            last = stream.replica.seq
            buffered = []  # the snapshot is newer than anything buffered
        if buffered and buffered[0][0] > last + 1:
            self.send_snapshot(stream, sub, HISTORY)  # history ended short of the live frames
            return
        for seq, frame in buffered:
            if seq > last:
                sub.conn.edge.write(frame)
        sub.has_started = True

    def send_snapshot(self, stream: BookStream, sub: Subscription, reason: str) -> None:
        """The book now at the subscription's depth, encoded once per (format, reason, sequence)."""
        replica, depth, fmt = stream.replica, sub.depth, sub.conn.fmt
        cached = depth.snapshot_cache.get((fmt, reason))
        if cached is not None and cached[0] == replica.seq:
            frames = [cached[1]]
        else:
            ts_ns = replica.publish_ts_ns
            event = BookEvent(
                stream.meta.book, replica.seq, SNAPSHOT, tuple(replica.top(BID, depth.depth)),
                tuple(replica.top(ASK, depth.depth)), replica.price_exp, replica.size_exp, replica.exchange_ts_ns,
                ts_ns, ts_ns,
            )  # fmt: skip
            frames = [book_frame(fmt, stream.meta, event, reason)]
            depth.snapshot_cache[(fmt, reason)] = (replica.seq, frames[0])
        if replica.is_stale:
            ts_ns = replica.publish_ts_ns
            stale = BookEvent(
                stream.meta.book, replica.seq, STALE, (), (), replica.price_exp, replica.size_exp, None, ts_ns, ts_ns,
                "book is resynchronising",
            )  # fmt: skip
            frames.append(book_frame(fmt, stream.meta, stale))
        for frame in frames:
            sub.conn.edge.write(frame)
        sub.has_started = True

    def resync(self, sub: Subscription) -> None:
        sub.buffer = None
        stream = sub.stream
        if stream.replica.seq:
            self.send_snapshot(stream, sub, RESYNC)

    def unsubscribe(self, conn: Connection, book: str) -> None:
        sub = conn.subscriptions.pop(book, None)
        if sub is None:
            return
        sub.depth.subscribers[conn.fmt].discard(sub)
        if not sub.depth.has_subscribers():
            sub.depth.idle_since = time.monotonic()

    def drop(self, conn: Connection) -> None:
        for book in list(conn.subscriptions):
            self.unsubscribe(conn, book)

    def latest(self, book: str) -> int:
        stream = self.books.get(book)
        return stream.replica.seq if stream else 0

    # -- heartbeats and housekeeping ------------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.HFT_WS_HEARTBEAT_S)
            try:
                self.beat(time.time_ns())
            except Exception:  # a heartbeat must never kill the loop
                logger.exception("stream: heartbeat failed")

    def beat(self, now_ns: int) -> None:
        """Each live subscription gets its book's last sequence, in its own format; idle streams expire."""
        idle_before = time.monotonic() - settings.HFT_WS_IDLE_KEEP_S
        for book, stream in list(self.books.items()):
            for key, depth in list(stream.depths.items()):
                if depth.idle_since is not None and depth.idle_since < idle_before:
                    del stream.depths[key]
                    continue
                for fmt, subscribers in depth.subscribers.items():
                    live = [sub for sub in subscribers if sub.has_started and sub.buffer is None]
                    if live:
                        frame = heartbeat_frame(fmt, stream.meta, stream.replica.seq, now_ns)
                        for sub in live:
                            sub.conn.edge.write(frame)
            if not stream.depths:
                del self.books[book]

    def close(self) -> None:
        self._heartbeat.cancel()


_lock = threading.Lock()
_stream_hubs: dict[int, StreamHub] = {}


def get_stream_hub(hub: MarketDataHub, bus: MarketDataBus) -> StreamHub:
    """The stream hub of the running loop for this market hub (tests run many loops and reset the hub)."""
    loop = asyncio.get_running_loop()
    with _lock:
        current = _stream_hubs.get(id(loop))
        if current is None or current.hub is not hub or current.loop is not loop:
            if current is not None:
                current.close()
            current = _stream_hubs[id(loop)] = StreamHub(hub, bus, loop)
        for key in [k for k, v in _stream_hubs.items() if v.loop.is_closed()]:
            del _stream_hubs[key]
        return current
