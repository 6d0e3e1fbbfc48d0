"""The book WebSocket through a real daphne process fed over Redis, with real WebSocket clients.

The test process publishes into the Redis bus the way a feed runner does; daphne's hub receives it over
its one subscription and fans it out. Needs Redis (CI has it; elsewhere these tests skip with a reason).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import websockets

from apps.orderbook.domain.events import DELTA, SNAPSHOT
from apps.orderbook.services.bus import RedisBus, unpublished
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.tests.conftest import ThrowawayRedis, throwaway_redis
from apps.tiers.tests.conftest import Persona, make_persona
from hftplatform.tests.live import LiveServer, start_daphne

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
__all__ = ["throwaway_redis"]  # a fixture: a redis-server of the test's own, to kill and restart

BOOK = "consolidated:BTC-USDT"
EXP = 8
WIDE_LEVELS = 300  # ~15 kB of JSON per delta, so a reader that stops reading fills its socket quickly


def publish_many(kind: str, batches: list[tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]]) -> int:
    now = time.time_ns()
    events = [unpublished(BOOK, kind, bids, asks, EXP, EXP, now, now) for bids, asks in batches]
    return get_bus().publish(events, now)[-1].seq


def wide_delta(i: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    bids = tuple((10_000_000 - k, 1 + (i + k) % 97) for k in range(WIDE_LEVELS))
    asks = tuple((10_000_001 + k, 1 + (i * 3 + k) % 89) for k in range(WIDE_LEVELS))
    return bids, asks


@pytest.fixture
def erin(market_redis: str) -> Persona:
    """An enterprise customer (full depth), created before the server copies the database."""
    return make_persona("Erin Quant", "enterprise")


@pytest.fixture
def server(erin: Persona, market_redis: str, tmp_path: Path) -> Iterator[LiveServer]:
    live = start_daphne(tmp_path, REDIS_URL=market_redis, HFT_WS_MAX_QUEUE="20", HFT_WS_HEARTBEAT_S="0.2")
    try:
        live.wait_until_serving()
        yield live
    finally:
        live.stop()


def stream_url(server: LiveServer, query: str = "depth=full") -> str:
    return f"{server.ws_url}/api/hft/ws/orderbook/BTC-USDT?{query}"


async def until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == kind:
            return message


class RawWebSocket:
    """A client that can truly stop reading: a plain socket with a small fixed receive buffer (loopback
    would otherwise autotune it to tens of MB), the handshake done by hand, frames parsed by hand."""

    def __init__(self, port: int, path: str, secret: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {secret}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            self.buffer += chunk
        taken, self.buffer = self.buffer[:n], self.buffer[n:]
        return taken

    def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame (the server's frames are unmasked and unfragmented)."""
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._take(2), "big")
        elif length == 127:
            length = int.from_bytes(self._take(8), "big")
        return first & 0x0F, self._take(length)


def test_slow_consumer_is_closed_with_4008_while_others_keep_up(server: LiveServer, erin: Persona) -> None:
    publish_many(SNAPSHOT, [wide_delta(0)])
    headers = {"Authorization": f"Bearer {erin.secret}"}
    slow = RawWebSocket(server.port, "/api/hft/ws/orderbook/BTC-USDT?depth=full", erin.secret)

    async def scenario() -> tuple[int, int]:
        async with websockets.connect(stream_url(server), additional_headers=headers, max_size=None) as fast:
            first = int((await until(fast, SNAPSHOT))["sequence"])

            progress = [first]

            async def keep_up(last: int) -> int:
                seq = first
                while seq < last:
                    message = orjson.loads(await asyncio.wait_for(fast.recv(), 20))
                    if message["type"] == DELTA:
                        assert message["sequence"] == seq + 1
                        seq = progress[0] = message["sequence"]
                        if seq == first + 600:  # the server has written 9 MB for the slow socket by now
                            slow_reader.start()
                return seq

            count, batch = 1500, 10
            reader = asyncio.create_task(keep_up(first + count))
            for start in range(0, count, batch):
                # The fast client keeps up by construction: never more than two batches (~300 kB) are in
                # flight to it, under the edge's 256 kB high-water mark plus the kernel's buffers, however
                # loaded the machine is. The slow client, which reads nothing, overflows all the same.
                while progress[0] < first + start - batch and not reader.done():
                    await asyncio.sleep(0.002)
                await asyncio.to_thread(publish_many, DELTA, [wide_delta(i) for i in range(start, start + batch)])
            assert await reader == first + count  # the fast client got every delta, in order
            return first, count

    messages: list[dict[str, Any]] = []
    close_code: list[int] = []

    def read_to_the_close() -> None:
        """The stalled client resumes: what reached its socket, then the reason, then the close code."""
        while True:
            opcode, payload = slow.frame()
            if opcode == 0x8:
                close_code.append(int.from_bytes(payload[:2], "big"))
                return
            if opcode == 0x1:  # text; daphne's keep-alive pings (0x9) go unanswered, as a stuck reader's would
                messages.append(orjson.loads(payload))

    slow_reader = threading.Thread(target=read_to_the_close)
    first, count = asyncio.run(scenario())
    slow_reader.join(30)
    assert close_code == [4008]
    assert messages[-1]["type"] == "error"
    assert messages[-1]["code"] == "slow_consumer"
    sequences = [m["sequence"] for m in messages if m["type"] == DELTA]
    assert sequences == list(range(first + 1, first + 1 + len(sequences)))  # no silent hole before it
    assert len(sequences) < count


def units_of(levels: list[tuple[Decimal, Decimal]]) -> list[tuple[int, int]]:
    return [(int(price.scaleb(EXP)), int(size.scaleb(EXP))) for price, size in levels]


def test_real_clients_in_json_and_binary_hold_the_same_book_and_resume_after_a_drop(
    server: LiveServer, erin: Persona
) -> None:
    from hftclient import BookStream, Subscription

    seed = publish_many(SNAPSHOT, [wide_delta(0)])
    rng = random.Random(9)

    def random_levels() -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        bids = {10_000_000 - rng.randint(0, 30): rng.choice([0, rng.randint(1, 90)]) for _ in range(3)}
        asks = {10_000_001 + rng.randint(0, 30): rng.choice([0, rng.randint(1, 90)]) for _ in range(3)}
        return tuple(bids.items()), tuple(asks.items())

    async def follow(stream: BookStream, last: int, drop_at: int | None) -> list[str]:
        """Iterate until the book reaches `last`; at `drop_at`, cut the TCP connection under the client."""
        kinds: list[str] = []
        async for update in stream:
            kinds.append(getattr(update.message, "type", type(update.message).__name__))
            book = stream.books.get(BOOK)
            if drop_at is not None and book is not None and book.sequence == drop_at:
                drop_at = None
                assert stream._websocket is not None
                stream._websocket.transport.abort()
                kinds.append("dropped")
            if book is not None and book.sequence == last and book.is_in_sync:
                break
        await stream.close()
        return kinds

    async def scenario() -> None:
        streams = [
            BookStream(server.ws_url, erin.secret, [Subscription("BTC-USDT", depth=10)], format=fmt)
            for fmt in ("json", "binary")
        ]
        last = seed + 300
        followers = [asyncio.create_task(follow(s, last, drop_at=seed + 100)) for s in streams]
        await asyncio.sleep(0.5)  # both subscribed
        for _ in range(300):
            await asyncio.to_thread(publish_many, DELTA, [random_levels()])
        kinds = await asyncio.wait_for(asyncio.gather(*followers), 60)
        expected = get_hub().view(BOOK, 10)
        assert expected is not None
        assert expected.seq == last
        for stream, seen in zip(streams, kinds, strict=True):
            book = stream.books[BOOK]
            assert units_of(book.bid_levels(10)) == expected.bids
            assert units_of(book.ask_levels(10)) == expected.asks
            assert stream.connections == 2
            after_drop = seen[seen.index("dropped") :]
            assert "snapshot" not in after_drop, "the client resumed from the missed deltas, not a snapshot"

    asyncio.run(scenario())


def test_a_redis_restart_mid_stream_reaches_clients_as_a_reset_never_a_silent_divergence(
    throwaway_redis: ThrowawayRedis, tmp_path: Path, db: None
) -> None:
    from hftclient import BookStream, Subscription

    erin = make_persona("Erin Quant", "enterprise")
    runner = RedisBus(redis.Redis.from_url(throwaway_redis.url), 1000)  # the feed runner's bus
    book: dict[str, dict[int, int]] = {"bids": {}, "asks": {}}  # what the venue's book really is

    def trade(bus: RedisBus, kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> int:
        for side, levels in (("bids", bids), ("asks", asks)):
            if kind == SNAPSHOT:
                book[side].clear()
            book[side].update(levels)
            book[side] = {p: q for p, q in book[side].items() if q}
        now = time.time_ns()
        published = bus.publish([unpublished(BOOK, kind, tuple(bids), tuple(asks), EXP, EXP, now, now)], now)
        return published[0].seq if published else 0  # 0: refused

    def whole_book() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(book["bids"].items(), reverse=True), sorted(book["asks"].items())

    trade(runner, SNAPSHOT, [(1000 - i, 5) for i in range(5)], [(1001 + i, 5) for i in range(5)])
    live = start_daphne(tmp_path, REDIS_URL=throwaway_redis.url)
    live.wait_until_serving()

    async def settle(stream: BookStream, seq: int) -> list[str]:
        """Read until the client's book is in sync at `seq`; the kinds of message seen on the way."""
        kinds: list[str] = []
        async with asyncio.timeout(20):
            async for update in stream:
                kinds.append(getattr(update.message, "type", type(update.message).__name__))
                local = stream.books.get(BOOK)
                if local is not None and local.sequence == seq and local.is_in_sync:
                    return kinds
        raise AssertionError("stream ended")

    def assert_same_book(stream: BookStream) -> None:
        local = stream.books[BOOK]
        bids, asks = whole_book()
        assert units_of(local.bid_levels()) == bids
        assert units_of(local.ask_levels()) == asks

    async def scenario() -> None:
        stream = BookStream(live.ws_url, erin.secret, [Subscription("BTC-USDT", depth="full")])
        for i in range(20):
            seq = trade(runner, DELTA, [(1000 - i % 5, 6 + i)], [])
        await settle(stream, seq)
        assert_same_book(stream)

        # 1. Redis restarts; the feed runner lives on: the bus refuses a delta it could no longer number,
        # and the runner re-publishes the whole book, numbered after everything before.
        throwaway_redis.restart()
        await asyncio.sleep(0.5)
        assert trade(runner, DELTA, [(990, 1)], []) == 0
        assert runner.lost_books() == {BOOK}
        seq_after = trade(runner, SNAPSHOT, *whole_book())
        assert seq_after == seq + 1
        kinds = await settle(stream, seq_after)
        assert "snapshot" in kinds
        assert_same_book(stream)

        # 2. Redis and the feed runner both restart: sequences start again at 1.
        throwaway_redis.restart()
        await asyncio.sleep(0.5)
        fresh = RedisBus(redis.Redis.from_url(throwaway_redis.url), 1000)
        assert trade(fresh, SNAPSHOT, [(2000, 1)], [(2001, 1)]) == 1
        for i in range(5):
            last = trade(fresh, DELTA, [(1999 - i, 2)], [])
        kinds = await settle(stream, last)
        assert "snapshot" in kinds
        assert_same_book(stream)
        await stream.close()

    try:
        asyncio.run(scenario())
    finally:
        live.stop()
