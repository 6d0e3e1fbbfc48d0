"""What travels on the engine's queue (commands with their futures, market events, live outcomes), and the
order updates the engine publishes after each committed batch."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from apps.orderbook.domain.events import Trade
from apps.orders.domain.types import Reason
from apps.orders.services.engine.reports import ExecutionReport
from apps.orders.services.engine.state import Batch, EngineOrder
from apps.orders.services.engine.store import order_rows

Reports = dict[UUID, ExecutionReport]


@dataclass
class Command:
    op: str  # "submit" | "cancel"
    order_ids: tuple[UUID, ...]
    reason: Reason = Reason.CANCELED_BY_CUSTOMER
    future: Future[Reports] = field(default_factory=Future)
    # A submit from this process carries the orders as committed, so the engine need not read them back;
    # the sender never touches them again.
    orders: tuple[EngineOrder, ...] = ()


@dataclass(frozen=True)
class BookChanged:
    book: str


@dataclass(frozen=True)
class LiveOutcome:
    order_id: UUID
    outcome: Any  # live.VenueOutcome


Item = Command | BookChanged | Trade | LiveOutcome | None  # None: stop


def publish_batch(batch: Batch, written_at: datetime) -> None:
    """Each changed order (with the fills this batch added) to its owner, after commit."""
    from apps.orders.services.updates import audience, order_update, publish_order_updates

    listening = audience(o.customer_id for o in batch.orders.values())
    if not listening:
        return
    symbols = {o.id: o.symbol for o in batch.orders.values()}
    rows = [row for row in order_rows(batch, written_at) if row.customer_id in listening]
    publish_order_updates([order_update(row, batch.fills_of(row.id), symbols.get(row.id)) for row in rows])
