"""MarketDataBus: sequences, keeps and distributes book events. In process when embedded, Redis otherwise.

Redis layout, per book `B`: `hft:md:seq:B` the last sequence (INCR, so it survives a feed-runner
restart), `hft:md:hist:B` a stream of events with ids `<seq>-0` (XADD MAXLEN ~ HFT_DELTA_HISTORY),
`hft:md:ckpt:B` the latest snapshot checkpoint; live events on channel `hft:md:live:<db>`; `hft:md:books`
the set of books. One Lua call per event numbers it, stores it and publishes it atomically, so no
subscriber can see a sequence that history lacks; a batch of events is one pipelined round trip.

Our Redis keeps nothing on disk: a restart loses the counters, history and checkpoints. So the bus
remembers the last sequence it handed out per book (its floor) and passes it to the script, which never
numbers an event at or below it. Finding the counter below the floor means Redis lost the book: a
snapshot or stale event re-bases the counter on the floor and is published (a reset every consumer
accepts), a delta is refused (left with seq 0, not published) because no consumer could apply it. Either
way the book is reported by `lost_books`, and the publisher re-publishes its books as snapshots.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Protocol, cast

import orjson
import redis

from apps.orderbook.domain.book import Level
from apps.orderbook.domain.events import DELTA, BookEvent, Trade
from apps.orderbook.domain.wire import decode_event, decode_trade, encode_event, encode_trade, event_fields

LIVE_CHANNEL = "hft:md:live"
TRADES_CHANNEL = "hft:md:trades"
BOOKS_KEY = "hft:md:books"
TRADES_KEEP = 10_000  # trades kept per instrument in its stream (for readers that start late)


def trades_key(symbol: str) -> str:
    return f"hft:md:trades:{symbol}"


def channel(name: str, client: redis.Redis) -> str:
    """`name` for this client's database: Pub/Sub channels are server-wide, keys are per database, so two
    platforms (or a test run and a dev server) on one Redis in different databases must not hear each other."""
    return f"{name}:{client.connection_pool.connection_kwargs.get('db', 0)}"


# ARGV: event body (after `{"s":N,`), history length, live channel, book, floor, may re-base ("1"/"0").
# Returns the seq; 0 for a refused delta; minus the seq for an event that re-based a lost counter.
PUBLISH_LUA = """
local lost = 0
local floor = tonumber(ARGV[5])
if floor > 0 then
  local current = tonumber(redis.call('GET', KEYS[1]) or '0')
  if current < floor then
    if ARGV[6] ~= '1' then
      return 0
    end
    redis.call('SET', KEYS[1], floor)
    lost = 1
  end
end
local seq = redis.call('INCR', KEYS[1])
local payload = '{"s":' .. seq .. ',' .. ARGV[1]
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', payload)
redis.call('PUBLISH', ARGV[3], payload)
redis.call('SADD', KEYS[3], ARGV[4])
if lost == 1 then
  return -seq
end
return seq
"""

Listener = Callable[[BookEvent], None]


class _History:
    """One book's kept events, newest last, in three deques of the same length: each event's levels as the
    `bids` and `asks` tuples it was published with, and the rest of its fields as a tuple of plain values.

    Not the events themselves, for the garbage collector's sake. An object stays tracked for as long as it is
    kept, so 100,000 kept events per book made every full collection a pause of tens of milliseconds; and a
    tuple holding the level tuples would be untracked only a generation after them, so every kept event would
    still reach the oldest generation and set off those full collections. Held straight by a deque, a tuple of
    numbers and strings is untracked on the collector's first pass, a tuple of levels on its second.
    """

    __slots__ = ("asks", "bids", "fields")

    def __init__(self, length: int) -> None:
        self.fields: deque[tuple[int, str, int, int, int | None, int, int, str]] = deque(maxlen=length)
        self.bids: deque[tuple[Level, ...]] = deque(maxlen=length)
        self.asks: deque[tuple[Level, ...]] = deque(maxlen=length)

    def append(self, e: BookEvent) -> None:
        fields = (e.seq, e.kind, e.price_exp, e.size_exp, e.exchange_ts_ns, e.receive_ts_ns, e.publish_ts_ns, e.reason)
        self.fields.append(fields)
        self.bids.append(e.bids)
        self.asks.append(e.asks)

    def first_seq(self) -> int:
        return self.fields[0][0]

    def last_seq(self) -> int:
        return self.fields[-1][0]

    def events(self, book: str, start: int, limit: int) -> list[BookEvent]:
        """Up to `limit` events from the `start`-th kept one, oldest first."""
        stop = start + limit
        return [
            BookEvent(book, seq, kind, bids, asks, price_exp, size_exp, exchange_ts, receive_ts, publish_ts, reason)
            for (seq, kind, price_exp, size_exp, exchange_ts, receive_ts, publish_ts, reason), bids, asks in zip(
                islice(self.fields, start, stop),
                islice(self.bids, start, stop),
                islice(self.asks, start, stop),
                strict=True,
            )
        ]

    def __len__(self) -> int:
        return len(self.fields)


def unpublished(
    book: str,
    kind: str,
    bids: tuple[Level, ...],
    asks: tuple[Level, ...],
    price_exp: int,
    size_exp: int,
    exchange_ts_ns: int | None,
    receive_ts_ns: int,
    reason: str = "",
) -> BookEvent:
    """An event before the bus numbers it: `publish` sets its `seq` and `publish_ts_ns` in place."""
    return BookEvent(book, 0, kind, bids, asks, price_exp, size_exp, exchange_ts_ns, receive_ts_ns, 0, reason)


class MarketDataBus(Protocol):
    def publish(self, events: list[BookEvent], publish_ts_ns: int) -> list[BookEvent]:
        """Number, store and distribute the events in order; returns those published. A delta of a book whose
        sequence the bus lost is refused: it keeps seq 0 and is left out (see `lost_books`)."""
        ...

    def lost_books(self, *, check: bool = False) -> set[str]:
        """Books found to have lost their sequence since the last call (Redis restarted empty), then forgotten.
        With `check`, first compares the stored counters with the last sequences this bus handed out."""
        ...

    def publish_trades(self, trades: list[Trade]) -> None: ...
    def checkpoint(self, event: BookEvent) -> None: ...
    def load_checkpoint(self, book: str) -> BookEvent | None: ...
    def history(self, book: str, after_seq: int, limit: int) -> list[BookEvent]: ...
    def bounds(self, book: str) -> tuple[int, int]:
        """(oldest sequence still in history, latest sequence); (0, 0) for an unknown book."""
        ...

    def books(self) -> list[str]: ...


class InProcessBus:
    """The embedded bus: everything in this process's memory; listeners are called synchronously."""

    def __init__(self, history_length: int) -> None:
        self._lock = threading.Lock()
        self._history_length = history_length
        self._seq: dict[str, int] = {}
        self._history: dict[str, _History] = {}
        self._checkpoints: dict[str, BookEvent] = {}
        self._listeners: list[Listener] = []
        self._trade_listeners: list[Callable[[Trade], None]] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def subscribe_trades(self, listener: Callable[[Trade], None]) -> None:
        self._trade_listeners.append(listener)

    def publish(self, events: list[BookEvent], publish_ts_ns: int) -> list[BookEvent]:
        with self._lock:
            for event in events:
                event.seq = self._seq.get(event.book, 0) + 1
                event.publish_ts_ns = publish_ts_ns
                self._seq[event.book] = event.seq
                history = self._history.get(event.book)
                if history is None:
                    history = self._history[event.book] = _History(self._history_length)
                history.append(event)
        for event in events:
            for listener in self._listeners:
                listener(event)
        return events

    def lost_books(self, *, check: bool = False) -> set[str]:
        return set()  # this process's memory: nothing is lost while the process lives

    def publish_trades(self, trades: list[Trade]) -> None:
        for trade in trades:
            for listener in self._trade_listeners:
                listener(trade)

    def checkpoint(self, event: BookEvent) -> None:
        self._checkpoints[event.book] = event

    def load_checkpoint(self, book: str) -> BookEvent | None:
        return self._checkpoints.get(book)

    def history(self, book: str, after_seq: int, limit: int) -> list[BookEvent]:
        with self._lock:
            history = self._history.get(book)
            if not history:
                return []
            start = after_seq + 1 - history.first_seq()  # kept seqs are consecutive
            if start < 0:
                return []
            return history.events(book, start, limit)

    def bounds(self, book: str) -> tuple[int, int]:
        with self._lock:
            history = self._history.get(book)
            if not history:
                return (0, self._seq.get(book, 0))
            return (history.first_seq(), history.last_seq())

    def books(self) -> list[str]:
        return sorted(self._seq)


class RedisBus:
    def __init__(self, client: redis.Redis, history_length: int) -> None:
        self._client = client
        self._history_length = history_length
        self._script = client.register_script(PUBLISH_LUA)
        self._floors: dict[str, int] = {}  # book -> the last sequence this bus handed out
        self._lost: set[str] = set()
        self._live_channel = channel(LIVE_CHANNEL, client)
        self._trades_channel = channel(TRADES_CHANNEL, client)

    def publish(self, events: list[BookEvent], publish_ts_ns: int) -> list[BookEvent]:
        if not events:
            return []
        floors = self._floors
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            event.publish_ts_ns = publish_ts_ns
            body = orjson.dumps({k: v for k, v in event_fields(event).items() if k != "s"})
            self._script(
                keys=[f"hft:md:seq:{event.book}", f"hft:md:hist:{event.book}", BOOKS_KEY],
                args=[
                    body[1:],
                    self._history_length,
                    self._live_channel,
                    event.book,
                    floors.get(event.book, 0),
                    "0" if event.kind == DELTA else "1",
                ],
                client=pipe,
            )
        published: list[BookEvent] = []
        for event, result in zip(events, pipe.execute(), strict=True):
            seq = int(result)
            if seq <= 0:
                self._lost.add(event.book)
                if seq == 0:
                    continue  # refused: the event keeps seq 0
                seq = -seq
            event.seq = seq
            if seq > floors.get(event.book, 0):
                floors[event.book] = seq
            published.append(event)
        return published

    def lost_books(self, *, check: bool = False) -> set[str]:
        if check and self._floors:
            books = list(self._floors)
            stored = cast(list[bytes | None], self._client.mget([f"hft:md:seq:{b}" for b in books]))
            for book, raw in zip(books, stored, strict=True):
                if int(raw or 0) < self._floors[book]:
                    self._lost.add(book)
        lost, self._lost = self._lost, set()
        return lost

    def publish_trades(self, trades: list[Trade]) -> None:
        if not trades:
            return
        pipe = self._client.pipeline(transaction=False)
        for trade in trades:
            raw = encode_trade(trade)
            pipe.xadd(trades_key(trade.symbol), {"t": raw}, maxlen=TRADES_KEEP, approximate=True)
            pipe.publish(self._trades_channel, raw)
        pipe.execute()

    def recent_trades(self, symbols: list[str], since_ns: int) -> list[Trade]:
        """The kept trades of these instruments received since `since_ns`, oldest first (stream ids are the
        Redis server's ms, so the id range is widened by the filter on our own receive time)."""
        pipe = self._client.pipeline(transaction=False)
        for symbol in symbols:
            pipe.xrange(trades_key(symbol), min=str(since_ns // 1_000_000))
        rows = cast(list[list[tuple[bytes, dict[bytes, bytes]]]], pipe.execute())
        trades = [decode_trade(fields[b"t"]) for entries in rows for _, fields in entries]
        return sorted((t for t in trades if t.receive_ts_ns >= since_ns), key=lambda t: t.receive_ts_ns)

    def checkpoint(self, event: BookEvent) -> None:
        self._client.set(f"hft:md:ckpt:{event.book}", encode_event(event))

    def load_checkpoint(self, book: str) -> BookEvent | None:
        raw = cast(bytes | None, self._client.get(f"hft:md:ckpt:{book}"))
        return decode_event(raw) if raw else None

    def history(self, book: str, after_seq: int, limit: int) -> list[BookEvent]:
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            self._client.xrange(f"hft:md:hist:{book}", min=f"{after_seq + 1}-0", max="+", count=limit),
        )
        return [decode_event(fields[b"e"]) for _, fields in rows]

    def bounds(self, book: str) -> tuple[int, int]:
        pipe = self._client.pipeline(transaction=False)
        pipe.xrange(f"hft:md:hist:{book}", count=1)
        pipe.get(f"hft:md:seq:{book}")
        first, latest = pipe.execute()
        oldest = int(first[0][0].split(b"-")[0]) if first else 0
        return (oldest, int(latest or 0))

    def books(self) -> list[str]:
        return sorted(b.decode() for b in cast(set[bytes], self._client.smembers(BOOKS_KEY)))
