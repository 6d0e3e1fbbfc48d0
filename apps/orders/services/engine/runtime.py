"""The engine's thread: one queue of commands and market events, executed in order, flushed in batches.

Every command (submit, cancel) carries a future; it is resolved after the batch holding its effects has
committed, with each order's report. Market events (book changes of watched books, trades) go through
the same queue, so the engine's state has a single writer and needs no locks. A batch is flushed as soon
as a command waits on it, else after `flush_ms` or `max_batch` items, so bursts of fills share one
transaction. If a write fails the engine forgets its memory and reloads from the database: what was not
committed did not happen, and PENDING orders are executed again (for the first time, as far as anyone
can see).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.db import close_old_connections, connection, connections

from apps.orderbook.domain.events import BookEvent, Trade, book_id
from apps.orderbook.services.hub import MarketDataHub
from apps.orders.domain.states import Event
from apps.orders.domain.types import OrderStatus, OrderType, Reason
from apps.orders.services.engine.client import EngineClient, EngineUnavailable
from apps.orders.services.engine.core import PaperEngine
from apps.orders.services.engine.live_bridge import LiveBridge
from apps.orders.services.engine.messages import BookChanged, Command, Item, LiveOutcome, Reports, publish_batch
from apps.orders.services.engine.state import Batch, EngineOrder
from apps.orders.services.engine.store import Caches, load_open_paper_orders, load_orders, write_batch
from apps.orders.services.engine.watcher import DeadMansWatcher

logger = logging.getLogger(__name__)


class EngineRuntime:
    def __init__(
        self,
        hub: MarketDataHub,
        *,
        flush_ms: float | None = None,
        max_batch: int | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        publish: Callable[[Batch, datetime], None] | None = None,
    ) -> None:
        self.hub = hub
        self.caches = Caches()
        self.flush_s = (settings.HFT_PAPER_FLUSH_MS if flush_ms is None else flush_ms) / 1000
        self.max_batch = settings.HFT_PAPER_MAX_BATCH if max_batch is None else max_batch
        self.clock_ns = clock_ns
        self.publish = publish or publish_batch
        self.queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self.engine = self._new_engine()
        self.deferred: dict[UUID, tuple[EngineOrder, float]] = {}  # reloaded PENDING orders awaiting a book
        self.batches_written = 0
        self._thread: threading.Thread | None = None
        self._listening = False
        self._stopped = False
        self.ready = threading.Event()
        self.live = LiveBridge(self.queue.put)
        deadman_ms = settings.HFT_PAPER_DEADMAN_MS
        self.watcher = DeadMansWatcher(deadman_ms / 1000) if deadman_ms > 0 else None

    # --- any thread ---------------------------------------------------------------------------------
    def request(
        self,
        op: str,
        order_ids: Iterable[UUID],
        reason: Reason = Reason.CANCELED_BY_CUSTOMER,
        orders: Sequence[EngineOrder] = (),
    ) -> Future[Reports]:
        command = Command(op, tuple(order_ids), reason, orders=tuple(orders))
        self.queue.put(command)
        return command.future

    def start(self) -> None:
        """Listen to the market and run the engine's thread (which first reloads the open orders)."""
        self.listen()
        self._thread = threading.Thread(target=self._run, name="paper-engine", daemon=True)
        self._thread.start()
        self.ready.wait(timeout=30)  # the open orders are back before the first command is taken
        if self.watcher is not None:
            self.watcher.start()

    def stop(self, timeout_s: float = 5) -> None:
        self._stopped = True  # the hub keeps its listeners: they must stop queueing for a dead thread
        if self.watcher is not None:
            self.watcher.stop()
        self.queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.live.stop()

    def listen(self) -> None:
        if not self._listening:
            self.hub.add_listener(self._on_book_event)
            self.hub.add_trade_listener(self._on_trade)
            self._listening = True

    # --- the engine's thread --------------------------------------------------------------------------
    def reload(self) -> None:
        """Start over from the database: resting orders re-rest, PENDING ones execute once a book is there."""
        self.engine = self._new_engine()
        self.deferred.clear()
        grace_s = settings.HFT_PAPER_START_GRACE_S
        for order in load_open_paper_orders():
            if order.status == OrderStatus.PENDING:
                self.deferred[order.id] = (order, time.monotonic() + grace_s)
            elif order.type == OrderType.LIMIT and order.price is not None and order.filled < order.quantity:
                self.engine.rest(order)
            else:  # open but unable to rest (never written so by this engine): ended, not left hanging
                logger.error("paper engine: open order %s cannot rest; expiring it", order.id)
                self.engine.finish(order, Event.EXPIRE, Reason.IOC_REMAINDER)
        self._run_deferred()
        self._flush([])

    def run_pending(self) -> None:
        """Process what is queued now, on the calling thread (tests, and the thread's own loop)."""
        items: list[Item] = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if items:
            self.step([i for i in items if i is not None])

    def step(self, items: Sequence[Item]) -> None:
        commands = [i for i in items if isinstance(i, Command)]
        wanted = {oid for c in commands for oid in c.order_ids}
        unknown = {oid for oid in wanted if self.engine.known(oid) is None and oid not in self.deferred}
        given = {o.id: o for c in commands for o in c.orders if o.id in unknown}
        loaded = load_orders(unknown - given.keys()) if len(unknown) > len(given) else {}
        loaded.update(given)
        books: set[str] = set()
        for item in items:
            if isinstance(item, Command):
                self._command(item, loaded)
            elif isinstance(item, BookChanged):
                books.add(item.book)
            elif isinstance(item, Trade):
                self.engine.on_trade(item)
            elif isinstance(item, LiveOutcome):
                self._live_outcome(item)
        for book in books:
            self.engine.on_book(book)
        self._run_deferred()
        self._flush(commands, loaded)

    def _command(self, command: Command, loaded: dict[UUID, EngineOrder]) -> None:
        for order_id in command.order_ids:
            deferred = self.deferred.pop(order_id, None)
            order = self.engine.known(order_id) or (deferred[0] if deferred else loaded.get(order_id))
            if order is None:
                continue
            if command.op == "submit":
                self._submit(order)
            elif order.is_paper:
                self.engine.cancel(order, command.reason)
            else:
                self._cancel_live(order)

    def _submit(self, order: EngineOrder) -> None:
        if order.is_paper:
            self.engine.submit(order)
        elif self.engine.known(order.id) is None and self.engine.allows(order, Event.ACCEPT):
            # Held while its placement is in flight (still PENDING): a re-sent submit never sends it twice.
            self.engine.track(order)
            self.live.place(order)

    def _cancel_live(self, order: EngineOrder) -> None:
        # The venue decides (canceled, or filled first): its answer comes back as an outcome. The table
        # refuses a finished order and an UNKNOWN one (the reconciler writes it until the venue answers).
        if self.engine.allows(order, Event.CANCEL):
            if self.engine.known(order.id) is None:
                self.engine.track(order)
            self.live.cancel(order)

    def _live_outcome(self, item: LiveOutcome) -> None:
        order = self.engine.known(item.order_id)
        if order is None:  # reloaded or forgotten since the order was sent: its state is in the database
            order = load_orders([item.order_id]).get(item.order_id)
            if order is None:
                return
        self.engine.venue_outcome(order, item.outcome)

    def _run_deferred(self) -> None:
        now = time.monotonic()
        for order_id, (order, deadline) in list(self.deferred.items()):
            view = self.hub.view(self.engine.book_of(order), 1)
            if (view is not None and not view.is_stale) or now >= deadline:
                del self.deferred[order_id]
                self.engine.submit(order)

    def _flush(self, commands: Sequence[Command], loaded: dict[UUID, EngineOrder] | None = None) -> None:
        batch = self.engine.take_batch()
        written_at: datetime | None = None
        if len(batch):
            try:
                written_at = write_batch(batch)
                self.batches_written += 1
            except Exception:
                logger.exception("paper engine: writing a batch failed; reloading from the database")
                for command in commands:
                    command.future.set_result({})
                _drop_broken_connection()
                self.reload()
                return
        for command in commands:
            command.future.set_result(self._reports(command.order_ids, loaded or {}))
        if written_at is not None and batch.orders:
            try:
                self.publish(batch, written_at)
            except Exception:
                logger.exception("paper engine: publishing order updates failed")

    def _reports(self, order_ids: Iterable[UUID], loaded: dict[UUID, EngineOrder]) -> Reports:
        reports: Reports = {}
        for order_id in order_ids:
            order = self.engine.known(order_id) or loaded.get(order_id)
            if order is not None and order_id not in self.deferred:
                reports[order_id] = order.report()
        return reports

    def _run(self) -> None:
        self._guarded_reload()
        self.ready.set()
        stopping = False
        while not stopping:
            try:
                first = self.queue.get(timeout=0.5)
            except queue.Empty:
                if self.deferred:
                    self._guarded([])
                continue
            items, stopping = self._gather(first)
            self._guarded(items)
        connections.close_all()  # this thread's own connection (a pooled one would keep a session open)

    def _gather(self, first: Item) -> tuple[list[Item], bool]:
        """Items for one batch: all queued now; with no command waiting, more for up to `flush_s`."""
        items: list[Item] = [first]
        deadline = time.monotonic() + self.flush_s
        while len(items) < self.max_batch and items[-1] is not None:
            try:
                items.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0 or any(isinstance(i, Command) for i in items):
                break
            try:
                items.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        stopping = any(i is None for i in items)
        return [i for i in items if i is not None], stopping

    def _guarded(self, items: list[Item]) -> None:
        try:
            self.step(items)
        except Exception:
            logger.exception("paper engine: a step failed; reloading from the database")
            for item in items:
                if isinstance(item, Command) and not item.future.done():
                    item.future.set_result({})
            _drop_broken_connection()
            self._guarded_reload()

    def _guarded_reload(self) -> None:
        try:
            self.reload()
        except Exception:
            logger.exception("paper engine: reload failed; the next step works from what it has")

    def _on_book_event(self, event: BookEvent) -> None:
        # Runs on the hub's (or the feed's) thread: only a set lookup and a put, never engine work.
        if event.book in self.engine.watched and not self._stopped:
            self.queue.put(BookChanged(event.book))

    def _on_trade(self, trade: Trade) -> None:
        watched = self.engine.watched
        if (
            watched
            and not self._stopped
            and (f"{self.engine.book_venue}:{trade.symbol}" in watched or book_id(trade.venue, trade.symbol) in watched)
        ):
            self.queue.put(trade)

    def _new_engine(self) -> PaperEngine:
        return PaperEngine(
            self.hub,
            self.caches.fees,
            self.caches.exponents,
            self.caches.rules,
            self.clock_ns,
            book_venue=settings.HFT_PAPER_BOOK_VENUE,
            depth=settings.HFT_PAPER_DEPTH,
        )


def _drop_broken_connection() -> None:
    """After a failed write: a connection the database dropped is replaced on next use (never inside an
    outer transaction, which only tests that drive the engine on their own thread have)."""
    if not connection.in_atomic_block:
        close_old_connections()


# --- the in-process transport ---------------------------------------------------------------------------
_runtime: EngineRuntime | None = None
_runtime_lock = threading.Lock()


def start_runtime(hub: MarketDataHub) -> EngineRuntime:
    """Start this process's engine (once)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = EngineRuntime(hub)
            _runtime.start()
        return _runtime


def stop_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.stop()
        _runtime = None


def current_runtime() -> EngineRuntime | None:
    return _runtime


def install_runtime(runtime: EngineRuntime | None) -> None:
    """Make `runtime` the process's engine (tests drive one by hand)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


class InProcessEngineClient(EngineClient):
    """Calls the engine of this process: a command on its queue, and a wait on the command's future."""

    def send(
        self,
        op: str,
        order_ids: Sequence[UUID],
        *,
        timeout_s: float,
        reason: Reason = Reason.CANCELED_BY_CUSTOMER,
        orders: Sequence[EngineOrder] = (),
    ) -> Reports:
        runtime = _runtime
        if runtime is None:
            raise EngineUnavailable("the paper engine is not running in this process")
        if not order_ids:
            return {}
        future = runtime.request(op, order_ids, reason, orders)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            return {}
