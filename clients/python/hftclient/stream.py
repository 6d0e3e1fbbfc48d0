"""The asyncio stream client: one connection, local books for its subscriptions, resync and resume."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .binary import decode_binary
from .book import LocalBook
from .messages import (
    CONSOLIDATED,
    BookMessage,
    Heartbeat,
    Message,
    Source,
    Stale,
    Subscribed,
    Trade,
    Unsubscribed,
    book_key,
    normalise_pair,
    parse_json,
)

# Close codes after which reconnecting cannot help (docs/streaming.md); 4008, 4429 and 4503 are retried.
FATAL_CLOSE_CODES = frozenset({4400, 4401, 4403, 4431})
MAX_FRAME_BYTES = 64 * 1024 * 1024  # a full-depth snapshot of a deep book


@dataclass(frozen=True, slots=True)
class Subscription:
    pair: str
    venue: str = CONSOLIDATED
    depth: int | str | None = None  # None: the server's default; "full" where the tier allows

    @property
    def key(self) -> str:
        return book_key(self.venue, normalise_pair(self.pair))


@dataclass(frozen=True, slots=True)
class Update:
    """One message as received: its book (after applying it) and its latency from our publish."""

    message: Message
    received_ns: int  # local clock, ns since the epoch
    book: LocalBook | None = None
    latency_ns: int | None = None  # received_ns minus the message's `timestamp`; None for messages without one


class StreamClosed(Exception):
    """The server closed or refused the connection for a reason reconnecting cannot fix (bad key, tier)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"stream closed by the server ({code}): {reason}")
        self.code = code
        self.reason = reason


class BookStream:
    """Local books of `subscriptions` from `WS {url}/api/hft/ws/orderbook/{pair}`; iterate it for updates.

    A delta or heartbeat that reveals a gap sends one `resync` for that book; a dropped connection is
    reopened, resuming each book with `since_sequence` so that no snapshot is needed when history allows.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        subscriptions: Iterable[Subscription],
        *,
        format: str = "json",
        reconnect_delay_s: float = 0.2,
        max_reconnect_delay_s: float = 5.0,
        clock_ns: Callable[[], int] = time.time_ns,
        **connect_options: Any,
    ) -> None:
        if format not in ("json", "binary"):
            raise ValueError(f"format must be 'json' or 'binary', got {format!r}")
        self.url = url.rstrip("/")
        self.format = format
        self.books: dict[str, LocalBook] = {}
        self.connections = 0  # connections opened so far
        self._api_key = api_key
        self._subscriptions = {sub.key: sub for sub in subscriptions}
        self._reconnect_delay_s = reconnect_delay_s
        self._max_reconnect_delay_s = max_reconnect_delay_s
        self._clock_ns = clock_ns
        self._connect_options = {"compression": None, "max_size": MAX_FRAME_BYTES, **connect_options}
        self._book_ids: dict[tuple[int, int], str] = {}  # (instrument_id, venue_id) → book key
        self._resync_requested: set[str] = set()
        self._websocket: ClientConnection | None = None
        self._next_id = 0
        self._is_closing = False

    def __aiter__(self) -> AsyncIterator[Update]:
        return self.updates()

    async def updates(self) -> AsyncIterator[Update]:
        delay_s = self._reconnect_delay_s
        while not self._is_closing:
            if not self._subscriptions:
                raise ValueError("no subscriptions: the stream URL names a pair")
            try:
                async with connect(
                    self._first_url(), additional_headers=self._headers(), **self._connect_options
                ) as ws:
                    self._websocket = ws
                    self.connections += 1
                    self._resync_requested.clear()  # a book with a gap resumes with a snapshot
                    delay_s = self._reconnect_delay_s
                    await self._subscribe_others()
                    async for frame in ws:
                        received_ns = self._clock_ns()
                        update = self._receive(frame, received_ns)
                        yield update
                        await self._resync_if_needed(update)
                    self._raise_if_fatal(ws.close_code, ws.close_reason or "")
            except ConnectionClosed as exc:
                closed = exc.rcvd
                self._raise_if_fatal(closed.code if closed else None, closed.reason if closed else str(exc))
            except InvalidStatus as exc:
                if exc.response.status_code < 500:  # refused; a 5xx is a server or proxy restarting: retry
                    raise StreamClosed(exc.response.status_code, "handshake refused") from exc
            except (OSError, TimeoutError):
                pass  # refused or unreachable: retry
            finally:
                self._websocket = None
            if not self._is_closing:
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._max_reconnect_delay_s)

    async def subscribe(self, subscription: Subscription) -> int:
        self._subscriptions[subscription.key] = subscription
        return await self._send_subscribe(subscription)

    async def unsubscribe(self, pair: str, venue: str = CONSOLIDATED) -> int:
        key = book_key(venue, normalise_pair(pair))
        self._subscriptions.pop(key, None)
        self.books.pop(key, None)
        return await self._send({"op": "unsubscribe", "pair": normalise_pair(pair), "venue": venue})

    async def resync(self, pair: str, venue: str = CONSOLIDATED) -> int:
        return await self._send({"op": "resync", "pair": normalise_pair(pair), "venue": venue})

    async def ping(self) -> int:
        return await self._send({"op": "ping"})

    async def close(self) -> None:
        self._is_closing = True
        if self._websocket is not None:
            await self._websocket.close()

    def _first_url(self) -> str:
        first = next(iter(self._subscriptions.values()))
        query: dict[str, str | int] = {"format": self.format, "venue": first.venue}
        if first.depth is not None:
            query["depth"] = first.depth
        since = self._resume_point(first.key)
        if since is not None:
            query["since_sequence"] = since
        return f"{self.url}/api/hft/ws/orderbook/{quote(first.pair, safe='')}?{urlencode(query)}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _resume_point(self, key: str) -> int | None:
        # A book with a gap resumes from nothing: the server then sends a snapshot.
        book = self.books.get(key)
        if book is None or book.gap is not None:
            return None
        return book.sequence

    async def _subscribe_others(self) -> None:
        for subscription in list(self._subscriptions.values())[1:]:
            await self._send_subscribe(subscription)

    async def _send_subscribe(self, subscription: Subscription) -> int:
        op: dict[str, Any] = {"op": "subscribe", "pair": normalise_pair(subscription.pair), "venue": subscription.venue}
        if subscription.depth is not None:
            op["depth"] = subscription.depth
        since = self._resume_point(subscription.key)
        if since is not None:
            op["since_sequence"] = since
        return await self._send(op)

    async def _send(self, op: dict[str, Any]) -> int:
        """Send an op with a fresh id (returned); dropped when disconnected, since reconnecting redoes it."""
        self._next_id += 1
        if self._websocket is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._websocket.send(json.dumps({**op, "id": self._next_id}))
        return self._next_id

    def _receive(self, frame: str | bytes, received_ns: int) -> Update:
        message = parse_json(frame) if isinstance(frame, str) else decode_binary(frame)
        if isinstance(message, Subscribed):
            self._book_ids[(message.instrument_id, message.venue_id)] = message.book
            self.books.setdefault(message.book, LocalBook(message.book))
            return Update(message, received_ns)
        if isinstance(message, Unsubscribed):
            self.books.pop(book_key(message.venue, message.pair), None)
            return Update(message, received_ns)
        if not isinstance(message, BookMessage | Heartbeat | Stale | Trade):
            return Update(message, received_ns)
        book = self.books.get(self._key_of(message.source))
        if book is None or isinstance(message, Trade):
            return Update(message, received_ns, book)
        if isinstance(message, BookMessage) and message.type == "snapshot":
            self._resync_requested.discard(book.key)
        book.apply(message)
        return Update(message, received_ns, book, received_ns - message.timestamp)

    def _key_of(self, source: Source) -> str:
        if source.pair is not None:
            return book_key(source.venue or CONSOLIDATED, source.pair)
        return self._book_ids.get((source.instrument_id or 0, source.venue_id or 0), "")

    async def _resync_if_needed(self, update: Update) -> None:
        book = update.book
        if book is None or book.gap is None or book.key in self._resync_requested:
            return
        self._resync_requested.add(book.key)
        venue, _, pair = book.key.partition(":")
        await self.resync(pair, venue)

    def _raise_if_fatal(self, code: int | None, reason: str) -> None:
        if code in FATAL_CLOSE_CODES:
            raise StreamClosed(code, reason)
