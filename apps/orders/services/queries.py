"""Reads of a customer's own orders, fills and balances: every lookup is scoped by customer (`access_*`).

Another customer's order is indistinguishable from one that does not exist. Lists page by an opaque
cursor over (created_at, id), newest first, so a page never shifts while new orders arrive.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db.models import Q

from apps.orderbook.services.feeds import normalise_symbol
from apps.orders.domain.types import TERMINAL
from apps.orders.exceptions import InvalidCursor, OrderNotFound
from apps.orders.models import Balance, Fill, Order
from apps.orders.services.updates import render_fill, render_order, symbols_by_id

OPEN = "OPEN"  # status filter alias: every non-final status


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None


def access_order(customer_id: int, order_id: UUID) -> Order:
    order = Order.objects.filter(customer_id=customer_id, id=order_id).first()
    if order is None:
        raise OrderNotFound("No such order.", detail={"order_id": str(order_id)})
    return order


def access_order_by_client_id(customer_id: int, client_order_id: str) -> Order:
    order = Order.objects.filter(customer_id=customer_id, client_order_id=client_order_id).first()
    if order is None:
        raise OrderNotFound("No such order.", detail={"client_order_id": client_order_id})
    return order


def order_detail(order: Order) -> dict[str, Any]:
    """The order with all its fills (one more query)."""
    body = render_order(order)
    body["fills"] = [render_fill(fill) for fill in Fill.objects.filter(order_id=order.id).order_by("ts_ns", "id")]
    return body


def list_orders(
    customer_id: int, *, status: str | None = None, pair: str | None = None, limit: int = 100, cursor: str | None = None
) -> OrderPage:
    query = Order.objects.filter(customer_id=customer_id)
    if status == OPEN:
        query = query.exclude(status__in=[s.value for s in TERMINAL])
    elif status:
        query = query.filter(status=status)
    if pair:
        query = query.filter(instrument__symbol=normalise_symbol(pair))
    if cursor:
        created_at, order_id = decode_cursor(cursor)
        query = query.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=order_id))
    orders = list(query.order_by("-created_at", "-id")[: limit + 1])
    has_more = len(orders) > limit
    orders = orders[:limit]
    return OrderPage(orders, encode_cursor(orders[-1]) if has_more else None)


def render_page(page: OrderPage) -> dict[str, Any]:
    symbols = symbols_by_id()
    return {
        "results": [render_order(o, symbols.get(o.instrument_id)) for o in page.orders],
        "next_cursor": page.next_cursor,
    }


def encode_cursor(order: Order) -> str:
    raw = f"{order.created_at.isoformat()}|{order.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, order_id = raw.split("|")
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("a cursor's time is always aware")
        # In UTC here: a crafted year-1 or year-9999 time with an offset would overflow in the query instead.
        return when.astimezone(UTC), UUID(order_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this API gave out.", detail={"cursor": cursor}) from exc


def customer_balances(customer_id: int) -> list[dict[str, str]]:
    return [
        {
            "currency": b.currency,
            "available": _text(b.available),
            "locked": _text(b.locked),
            "total": _text(b.available + b.locked),
        }
        for b in Balance.objects.filter(customer_id=customer_id).order_by("currency")
    ]


def _text(value: Any) -> str:
    return format(value.normalize(), "f") if value else "0"
