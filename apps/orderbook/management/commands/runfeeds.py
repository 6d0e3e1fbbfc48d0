"""`manage.py runfeeds`: run the configured venue feeds (HFT_FEEDS) and the consolidator in this process.

With Redis, it holds the lease of every feed and of the consolidator, so a Celery runner cannot run the
same connection at the same time; it refuses to start while any of them is held elsewhere.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.orderbook.services.feeds import FeedConfig
from apps.orderbook.services.market import build_runner, configured_feeds, redis_client
from apps.orderbook.services.runner import FeedRunner
from apps.orderbook.services.supervision import CONSOLIDATOR, Lease, hold_lease


class Command(BaseCommand):
    help = "Run the venue feeds of HFT_FEEDS (or the simulated venue's) and publish their books."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--feed", action="append", help="Only this feed (venue:SYMBOL,...); repeatable")
        parser.add_argument("--seconds", type=float, default=None, help="Stop after this long")

    def handle(self, *args: Any, **options: Any) -> None:
        feeds = configured_feeds()
        if options["feed"]:
            feeds = [f for f in feeds if f.name in options["feed"]]
            if not feeds:
                raise CommandError(f"no configured feed named {options['feed']}; see HFT_FEEDS")
        leases = self._leases(feeds) if settings.REDIS_URL else []
        runner, _ = build_runner(feeds)
        for feed in feeds:
            self.stdout.write(f"feed {feed.name}: {feed.protocol} {feed.ws_url} (REST {feed.rest_url})")
        try:
            asyncio.run(self._run(runner, leases, options["seconds"]))
        finally:
            for lease in leases:
                lease.release()

    def _leases(self, feeds: list[FeedConfig]) -> list[Lease]:
        client = redis_client()
        leases: list[Lease] = []
        for name in [f.name for f in feeds] + [CONSOLIDATOR]:
            lease = Lease(client, name, settings.HFT_FEED_LEASE_MS)
            if not lease.acquire():
                for held in leases:
                    held.release()
                raise CommandError(f"{name} is running elsewhere (its lease is held); stop it first")
            leases.append(lease)
        return leases

    async def _run(self, runner: FeedRunner, leases: list[Lease], seconds: float | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        holders = [asyncio.ensure_future(hold_lease(lease, stop)) for lease in leases]
        task = asyncio.ensure_future(runner.run())
        await asyncio.wait(
            [task, asyncio.ensure_future(stop.wait())], timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        runner.request_stop()
        await asyncio.gather(task, return_exceptions=True)
        for holder in holders:
            holder.cancel()
