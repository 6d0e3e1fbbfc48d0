"""Feed runners under Redis leases: exactly one holder per venue connection (and one consolidator).

A holder renews its lease every third of its TTL and stops when it cannot; the beat job
`supervise_feeds` starts a runner for any feed whose lease has lapsed. The consolidator folds the venue
events of all runners into consolidated books, so each of those has a single writer too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import cast

import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.orderbook.domain.events import BookEvent
from apps.orderbook.services.bus import RedisBus
from apps.orderbook.services.feeds import FeedConfig
from apps.orderbook.services.hub import MarketDataHub, RedisHubListener
from apps.orderbook.services.market import build_runner, configured_feeds, redis_client
from apps.orderbook.services.publisher import FeedPublisher, Precision, PublishFailed

logger = logging.getLogger(__name__)
LEASE_PREFIX = "hft:feeds:lease:"
CONSOLIDATOR = "consolidator"
RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, client: redis.Redis, name: str, ttl_ms: int) -> None:
        self.client = client
        self.key = LEASE_PREFIX + name
        self.ttl_ms = ttl_ms
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = client.register_script(RENEW_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.holder])


def lapsed_feeds(client: redis.Redis, feeds: list[FeedConfig]) -> list[str]:
    names = [f.name for f in feeds] + [CONSOLIDATOR]
    held = cast(list[bytes | None], client.mget([LEASE_PREFIX + n for n in names]))
    return [name for name, holder in zip(names, held, strict=True) if holder is None]


async def hold_lease(lease: Lease, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(lease.ttl_ms / 3000)
        try:
            renewed = await sync_to_async(lease.renew, thread_sensitive=False)()
        except redis.RedisError:
            renewed = False
        if not renewed:
            logger.error("lease %s lost; stopping", lease.key)
            stop.set()


def run_feed(name: str, *, max_seconds: float | None = None) -> str:
    """Run the named feed while holding its lease; returns why it stopped."""
    feed = next((f for f in configured_feeds() if f.name == name), None)
    if feed is None:
        return f"no configured feed named {name!r}"
    client = redis_client()
    lease = Lease(client, name, settings.HFT_FEED_LEASE_MS)
    if not lease.acquire():
        return f"{name} is held elsewhere"
    runner, _ = build_runner([feed], consolidate=False)
    try:
        asyncio.run(_run_leased(runner.run, runner.request_stop, lease, max_seconds))
    finally:
        lease.release()
    return f"{name} stopped"


async def _run_leased(run: object, request_stop: object, lease: Lease, max_seconds: float | None) -> None:
    stop = asyncio.Event()
    task = asyncio.ensure_future(run())  # type: ignore[operator]
    holder = asyncio.ensure_future(hold_lease(lease, stop))
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, waiter], timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED)
    request_stop()  # type: ignore[operator]
    await asyncio.gather(task, return_exceptions=True)
    holder.cancel()
    waiter.cancel()


def run_consolidator(*, max_seconds: float | None = None) -> str:
    """Fold every venue's published events into consolidated books, while holding the consolidator lease."""
    client = redis_client()
    lease = Lease(client, CONSOLIDATOR, settings.HFT_FEED_LEASE_MS)
    if not lease.acquire():
        return "consolidator is held elsewhere"
    from apps.orderbook.models import Instrument, Listing

    listings = {
        (x.venue.slug, x.instrument.symbol): Precision(x.price_exp, x.size_exp)
        for x in Listing.objects.select_related("venue", "instrument")
    }
    instruments = {i.symbol: Precision(i.price_exp, i.size_exp) for i in Instrument.objects.all()}
    bus = RedisBus(client, settings.HFT_DELTA_HISTORY)
    publisher = FeedPublisher(bus, listings, instruments, time.time_ns)
    hub = MarketDataHub(bus)
    hub.add_listener(lambda event: _fold(publisher, event))
    listener = RedisHubListener(hub, redis_client())
    listener.start()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(lease.ttl_ms / 3000)
            if not lease.renew():
                return "consolidator lease lost"
    finally:
        listener.stop()
        lease.release()
    return "consolidator stopped"


def _fold(publisher: FeedPublisher, event: BookEvent) -> None:
    if not event.book.startswith("consolidated:"):
        try:
            publisher.consolidate_events([event])
        except PublishFailed as exc:
            # Kept by the publisher: its next publish re-publishes every consolidated book as a snapshot.
            logger.warning("consolidator: publish failed (%s)", exc)
