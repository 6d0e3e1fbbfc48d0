"""Cancels: one order, a list, or all of a customer's open orders; always through the engine (single writer).

An order is looked up with its customer: another customer's id is the same "not found" as an unknown one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from apps.orders.domain.types import TERMINAL, OrderStatus, Reason
from apps.orders.exceptions import ExecutionUnavailable, OrderNotFound, OrderNotOpen
from apps.orders.models import Order
from apps.orders.services.engine import EngineUnavailable, ExecutionReport, engine_client
from apps.orders.services.placement import apply_report, submit_timeout_s

logger = logging.getLogger(__name__)
TERMINAL_VALUES = [status.value for status in TERMINAL]


@dataclass(frozen=True, slots=True)
class CancelResult:
    order_id: str
    order: Order | None  # None: not found (unknown, or not this customer's)
    is_canceled: bool  # the engine reported it canceled in time
    error: str | None = None  # "order_not_found" | "order_not_open"


def open_orders(customer_id: int, symbol: str | None = None) -> list[Order]:
    query = Order.objects.filter(customer_id=customer_id).exclude(status__in=TERMINAL_VALUES)
    if symbol is not None:
        query = query.filter(instrument__symbol=symbol)
    return list(query)


def cancel_order(customer_id: int, order_id: UUID) -> Order:
    """Cancel one open order of this customer; its state afterwards (CANCELED unless it filled first)."""
    [result] = cancel_orders(customer_id, [order_id])
    if result.order is None:
        raise OrderNotFound("No such order.", detail={"order_id": str(order_id)})
    if result.error == OrderNotOpen.code:
        raise OrderNotOpen(f"The order is already {result.order.status}.", detail={"status": result.order.status})
    return result.order


def cancel_orders(
    customer_id: int, order_ids: Sequence[UUID], *, reason: Reason = Reason.CANCELED_BY_CUSTOMER
) -> list[CancelResult]:
    """Cancel several of this customer's orders (two queries and one engine call whatever the count)."""
    found = {o.id: o for o in Order.objects.filter(customer_id=customer_id, id__in=list(order_ids))}
    live = [o for o in found.values() if o.status not in TERMINAL_VALUES]
    reports = _cancel(live, reason)
    results = []
    for order_id in order_ids:
        order = found.get(order_id)
        if order is None:
            results.append(CancelResult(str(order_id), None, False, OrderNotFound.code))
        elif order.status in TERMINAL_VALUES and order.id not in reports:
            results.append(CancelResult(str(order_id), order, False, OrderNotOpen.code))
        else:
            if order.id in reports:
                apply_report(order, reports[order.id])
            results.append(CancelResult(str(order_id), order, order.status == OrderStatus.CANCELED))
    return results


def cancel_all_orders(customer_id: int, reason: Reason, symbol: str | None = None) -> int:
    """Ask the engine to cancel every open order of the customer (of one symbol if given); how many."""
    orders = open_orders(customer_id, symbol)
    _cancel(orders, reason)
    return len(orders)


def _cancel(orders: Sequence[Order], reason: Reason) -> dict[UUID, ExecutionReport]:
    if not orders:
        return {}
    try:
        return engine_client().cancel([o.id for o in orders], reason=reason, timeout_s=submit_timeout_s())
    except EngineUnavailable as exc:
        raise ExecutionUnavailable("The execution engine is not running; try again shortly.") from exc
