"""The embedded market: a thread running the simulated venue (when HFT_FEEDS is unset) and the feed runner.

Both speak over loopback, so the real Binance connector code runs from the first minute; the feed runner
publishes into the in-process bus that this process's hub (and so its REST and WebSocket) reads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace

from django.conf import settings

from apps.microstructure.services.supervision import EmbeddedRecorder
from apps.orderbook.services.feeds import FeedConfig
from apps.orderbook.services.market import build_runner, configured_feeds, get_hub
from apps.orderbook.services.runner import FeedRunner

logger = logging.getLogger(__name__)
SIM_MIDS = {"BTC-USDT": "65000.00", "ETH-USDT": "3500.00"}


class EmbeddedMarket:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner: FeedRunner | None = None
        self.sim_port: int | None = None
        self.thread = threading.Thread(target=self._main, name="embedded-market", daemon=True)
        self.ready = threading.Event()
        self.micro_recorder: EmbeddedRecorder | None = None

    def start(self) -> None:
        get_hub()  # subscribe before the first event is published
        if settings.HFT_MICRO_EMBEDDED_RECORDER:
            # Live windows fill from the first trade; trades and metric bars go to the database.
            self.micro_recorder = EmbeddedRecorder()
            self.micro_recorder.start()
        self.thread.start()
        self.ready.wait(timeout=30)
        if settings.HFT_PAPER_ENGINE and not settings.REDIS_URL:
            # The paper engine reads this process's hub; placement calls it in-process (engine_client()).
            from apps.orders.services.engine.runtime import start_runtime

            start_runtime(get_hub())

    def stop(self) -> None:
        if settings.HFT_PAPER_ENGINE and not settings.REDIS_URL:
            from apps.orders.services.engine.runtime import stop_runtime

            stop_runtime()
        if self.micro_recorder is not None:
            self.micro_recorder.stop()
        if self.runner is not None:
            self.loop.call_soon_threadsafe(self.runner.request_stop)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        feeds = configured_feeds()
        if not settings.HFT_FEEDS:
            feeds = [self._start_simulated_venue(feeds[0])]
        # Building reads the database: done here, outside any running event loop.
        self.runner, _ = build_runner(feeds)
        self.ready.set()
        try:
            self.loop.run_until_complete(self.runner.run())
        except Exception:
            logger.exception("embedded market stopped")

    def _start_simulated_venue(self, feed: FeedConfig) -> FeedConfig:
        from apps.orderbook.simvenue import SimulatedVenue

        symbols = {s.replace("-", ""): SIM_MIDS.get(s, "100.00") for s in feed.instruments}
        venue = SimulatedVenue(symbols, rate_per_s=settings.HFT_SIM_RATE, seed=None)
        try:
            self.sim_port = self.loop.run_until_complete(venue.start("127.0.0.1", settings.HFT_SIM_PORT))
        except OSError:
            logger.warning("port %s is taken; the simulated venue takes a free one", settings.HFT_SIM_PORT)
            self.sim_port = self.loop.run_until_complete(venue.start("127.0.0.1", 0))
        base = f"127.0.0.1:{self.sim_port}"
        logger.info("simulated venue on http://%s (%s)", base, ", ".join(symbols))
        return replace(feed, ws_url=f"ws://{base}", rest_url=f"http://{base}")
