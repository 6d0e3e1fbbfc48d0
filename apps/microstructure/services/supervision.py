"""Where the recorder runs: a thread of the embedded process, or one leased runner per deployment.

In production exactly one recorder may write bars (two would race on the same rows and double the load),
so it holds the Redis lease `microstructure` like a feed runner holds its feed's; beat's
`supervise_microstructure` starts a new one on queue "feeds" when the lease lapses.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

from apps.microstructure.services.live import get_microstructure
from apps.microstructure.services.recorder import MicroRecorder
from apps.orderbook.services.market import redis_client
from apps.orderbook.services.supervision import LEASE_PREFIX, Lease

logger = logging.getLogger(__name__)
LEASE_NAME = "microstructure"


def run_leased_recorder(*, stop: threading.Event | None = None, max_seconds: float | None = None) -> str:
    """Run the recorder in this process while holding its lease; returns why it stopped."""
    lease = Lease(redis_client(), LEASE_NAME, settings.HFT_MICRO_LEASE_MS)
    if not lease.acquire():
        return "the microstructure recorder is held elsewhere"
    try:
        recorder = MicroRecorder(get_microstructure())
        return recorder.run(stop or threading.Event(), lease=lease, max_seconds=max_seconds)
    finally:
        lease.release()


def is_recorder_lapsed() -> bool:
    return redis_client().get(LEASE_PREFIX + LEASE_NAME) is None


class EmbeddedRecorder:
    """The recorder as a daemon thread of the embedded process (no lease: that process is the deployment)."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.recorder = MicroRecorder(get_microstructure())
        self.thread = threading.Thread(target=self._main, name="microstructure-recorder", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def _main(self) -> None:
        try:
            self.recorder.run(self.stop_event)
        except Exception:
            logger.exception("embedded microstructure recorder stopped")
