"""Non-paper orders: handed to the live venue adapter on an event loop of their own, outcomes queued back.

The adapter's calls are async and may take a venue's round trip; the engine's thread never waits on them.
Each outcome comes back through the engine's queue and is written like any other change (the engine stays
the order's single writer). A placement is sent once: a timeout is an UNKNOWN outcome, reconciled later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from apps.orders.services.engine.state import EngineOrder

logger = logging.getLogger(__name__)


class LiveBridge:
    def __init__(self, put: Callable[[Any], None]) -> None:
        self.put = put
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def place(self, order: EngineOrder) -> None:
        self._submit(self._place(order))

    def cancel(self, order: EngineOrder) -> None:
        self._submit(self._cancel(order))

    def stop(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    async def _place(self, order: EngineOrder) -> None:
        from apps.orders.services.live import place_live

        outcome = await place_live(live_order(order))
        self._report(order, outcome)

    async def _cancel(self, order: EngineOrder) -> None:
        from apps.orders.services.live import LiveVenueError, cancel_live

        try:
            outcome = await cancel_live(live_order(order))
        except LiveVenueError as exc:
            logger.warning("live cancel of %s gave no usable answer (%s); it stays as it was", order.id, exc)
            return
        self._report(order, outcome)

    def _report(self, order: EngineOrder, outcome: Any) -> None:
        from apps.orders.services.engine.messages import LiveOutcome

        self.put(LiveOutcome(order.id, outcome))

    def _submit(self, coroutine: Any) -> None:
        with self._lock:
            if self._loop is None:
                loop = self._loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="paper-engine-live", daemon=True).start()
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        future.add_done_callback(_log_failure)


def live_order(order: EngineOrder) -> Any:
    from apps.orders.services.live import LiveOrder

    return LiveOrder(
        order_id=order.id,
        customer_id=order.customer_id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        venue=order.venue,
        side=order.side,
        type=order.type,
        time_in_force=order.time_in_force,
        price=order.price,
        quantity=order.quantity,
    )


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("live venue call failed", exc_info=future.exception())
