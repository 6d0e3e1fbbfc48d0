"""Reconciliation of live orders left UNKNOWN by a venue timeout: ask the venue, write what it says, tell the owner.

Only UNKNOWN orders are touched (nothing else writes them while they are UNKNOWN: the engine leaves them
alone), and only if still UNKNOWN at the same version when the answer is written, so two concurrent runs
cannot both apply one. Venue calls happen outside any transaction; the writes are bulk and in one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from apps.orders.domain.states import next_status, reconcile_event
from apps.orders.domain.types import TERMINAL, OrderStatus, OrderType, Side, TimeInForce
from apps.orders.models import ORDER_STATE_FIELDS, PAPER_VENUE, Fill, Order
from apps.orders.services.balances import Ledger
from apps.orders.services.live.errors import LiveVenueError
from apps.orders.services.live.service import aclose_adapters, reconcile_live
from apps.orders.services.live.types import LiveOrder, VenueOutcome
from apps.orders.services.updates import OrderUpdate, order_update, publish_order_updates, symbols_by_id

logger = logging.getLogger(__name__)
CONCURRENT_QUERIES = 8  # venue queries in flight at once per run: polite to the venue's rate limits
ORDER_FIELDS = list(ORDER_STATE_FIELDS)


def live_order_of(order: Order, symbol: str, *, sent_before: datetime | None = None) -> LiveOrder:
    """The adapter's view of a stored order; `symbol` is ours ("BTC-USDT")."""
    return LiveOrder(
        order_id=order.id,
        customer_id=order.customer_id,
        client_order_id=order.client_order_id,
        symbol=symbol,
        venue=order.venue,
        side=Side(order.side),
        type=OrderType(order.type),
        time_in_force=TimeInForce(order.time_in_force),
        price=order.price,
        quantity=order.quantity,
        sent_before=sent_before,
    )


def reconcile_unknown_orders(*, limit: int = 200) -> int:
    """Reconcile up to `limit` UNKNOWN live orders, oldest first; the number whose state was written."""
    orders = list(
        Order.objects.filter(status=OrderStatus.UNKNOWN).exclude(venue=PAPER_VENUE).order_by("updated_at")[:limit]
    )
    if not orders:
        return 0
    symbols = symbols_by_id()
    # The order became UNKNOWN after its one request was sent: updated_at bounds the send time from above.
    live = [live_order_of(order, symbols[order.instrument_id], sent_before=order.updated_at) for order in orders]
    outcomes = async_to_sync(_query_all)(live)
    return _write(orders, outcomes, symbols)


async def _query_all(orders: Sequence[LiveOrder]) -> dict[object, VenueOutcome]:
    gate = asyncio.Semaphore(CONCURRENT_QUERIES)

    async def one(order: LiveOrder) -> VenueOutcome | None:
        async with gate:
            try:
                return await reconcile_live(order)
            except LiveVenueError as exc:  # no answer this time: it stays UNKNOWN for the next run
                logger.warning("reconcile %s on %s: %s", order.order_id, order.venue, exc)
                return None

    try:
        answers = await asyncio.gather(*(one(order) for order in orders))
    finally:
        await aclose_adapters()  # this loop ends with the call: its kept-alive connections go with it
    return {order.order_id: answer for order, answer in zip(orders, answers, strict=True) if answer is not None}


def _write(orders: Sequence[Order], outcomes: dict[object, VenueOutcome], symbols: dict[int, str]) -> int:
    decided = {order_id: o for order_id, o in outcomes.items() if o.status != OrderStatus.UNKNOWN}
    if not decided:
        return 0
    versions = {order.id: order.version for order in orders}
    now = timezone.now()
    updates: list[OrderUpdate] = []
    with transaction.atomic():
        locked = Order.objects.select_for_update().filter(pk__in=list(decided), status=OrderStatus.UNKNOWN)
        current = [order for order in locked if order.version == versions[order.id]]
        fills: list[Fill] = []
        for order in current:
            fills += _apply(order, decided[order.id], now)
        ended = [order for order in current if OrderStatus(order.status) in TERMINAL]
        _release(ended)  # a live order's paper lock, if placement took one, ends with the order
        Order.objects.bulk_update(current, ORDER_FIELDS)
        Fill.objects.bulk_create(fills)
        for order in current:
            order_fills = [fill for fill in fills if fill.order_id == order.id]
            updates.append(order_update(order, order_fills, symbols[order.instrument_id]))
        transaction.on_commit(lambda: publish_order_updates(updates))
    return len(current)


def _release(orders: Sequence[Order]) -> None:
    holders = [order for order in orders if order.locked_amount]
    if not holders:
        return
    ledger = Ledger.lock({(order.customer_id, order.locked_currency) for order in holders})
    for order in holders:
        ledger.release(order)
    ledger.save()


def _apply(order: Order, outcome: VenueOutcome, now: datetime) -> list[Fill]:
    order.status = next_status(OrderStatus.UNKNOWN, reconcile_event(outcome.status)).value
    order.reason = outcome.reason
    order.filled_quantity = outcome.filled_quantity
    order.average_price = outcome.average_price
    order.fees = outcome.fees
    order.fee_currency = outcome.fee_currency
    order.venue_order_id = outcome.venue_order_id
    order.updated_at = now
    order.version += 1
    trade_ids = outcome.venue_trade_ids or ("",) * len(outcome.fills)
    return [
        Fill(
            order=order,
            customer_id=order.customer_id,
            price=fill.price,
            quantity=fill.quantity,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=fill.liquidity,
            venue_trade_id=trade_id,
            ts_ns=fill.ts_ns,
        )
        for fill, trade_id in zip(outcome.fills, trade_ids, strict=True)
    ]
