"""The dead man's switch watcher: a thread of the engine's process that fires due switches every ~200 ms.

Firing cancels a customer's open orders through the engine's client, so the watcher must never run on the
engine's own thread (it would wait on itself).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.db import close_old_connections, connections
from django.utils import timezone

logger = logging.getLogger(__name__)


class DeadMansWatcher:
    def __init__(self, interval_s: float, fire: Callable[[datetime], int] | None = None) -> None:
        self.interval_s = interval_s
        self._fire = fire
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="paper-deadman", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def tick(self) -> int:
        fire = self._fire
        if fire is None:
            from apps.orders.services.deadman import fire_due_switches

            fire = fire_due_switches
        return fire(timezone.now())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                fired = self.tick()
                if fired:
                    logger.info("dead man's switch: %d customer(s) fired", fired)
            except Exception:
                logger.exception("dead man's switch watcher: a tick failed")
                close_old_connections()
        connections.close_all()
