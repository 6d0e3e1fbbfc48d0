"""`reconcile_unknown_orders`: UNKNOWN live orders are asked for at the venue, written, and pushed to their owner."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.orderbook.models import Instrument
from apps.orders.domain.types import OrderStatus, OrderType, Reason, Side, TimeInForce
from apps.orders.models import Fill, Order
from apps.orders.services.credentials import store_venue_credential
from apps.orders.services.live import place_live
from apps.orders.services.live import reconcile as reconcile_module
from apps.orders.services.live.reconcile import live_order_of, reconcile_unknown_orders
from apps.orders.services.live.tasks import reconcile_unknown_orders_task
from apps.orders.services.updates import OrderUpdate
from apps.orders.tests import venue_stub
from apps.orders.tests.venue_stub import ALICE_API_KEY, ALICE_API_SECRET, BinanceStub, run_live

pytestmark = pytest.mark.django_db


@pytest.fixture
def stub(settings: Any) -> Iterator[BinanceStub]:
    server = venue_stub.serve_binance(settings, timeout_s=0.3)
    yield server
    server.stop()


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[OrderUpdate]:
    sent: list[OrderUpdate] = []
    monkeypatch.setattr(reconcile_module, "publish_order_updates", sent.extend)
    return sent


def stored_order(persona: Any, *, status: OrderStatus = OrderStatus.PENDING, venue: str = "binance") -> Order:
    return Order.objects.create(
        customer=persona.customer,
        client_order_id=f"c-{uuid.uuid4().hex[:10]}",
        instrument=Instrument.objects.get(symbol="BTC-USDT"),
        venue=venue,
        side=Side.BUY.value,
        type=OrderType.LIMIT.value,
        time_in_force=TimeInForce.GTC.value,
        price=Decimal("49000.5"),
        quantity=Decimal("0.25"),
        status=status.value,
    )


def timed_out(stub: BinanceStub, order: Order, plan: venue_stub.Plan) -> Order:
    """Send `order` through the adapter with `plan` at the stub, and store the UNKNOWN it comes back with."""
    stub.plan(order.id.hex, plan)
    outcome = run_live(place_live, live_order_of(order, "BTC-USDT"))
    assert outcome.status == OrderStatus.UNKNOWN
    Order.objects.filter(pk=order.pk).update(status=outcome.status.value, reason=outcome.reason)
    order.refresh_from_db()
    return order


def test_unknown_order_filled_at_the_venue_is_written_with_its_fills_and_published(
    stub: BinanceStub, alice: Any, published: list[OrderUpdate], django_capture_on_commit_callbacks: Any
) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    order = timed_out(stub, stored_order(alice), venue_stub.fill(delay_s=1.0))
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile_unknown_orders() == 1
    order.refresh_from_db()
    assert (order.status, order.reason) == (OrderStatus.FILLED.value, "")
    assert (order.filled_quantity, order.average_price) == (Decimal("0.25"), Decimal("49000.5"))
    assert order.version == 2
    assert order.venue_order_id == str(stub.order(order.id.hex).order_id)
    fill = Fill.objects.get(order=order)
    assert (fill.quantity, fill.liquidity, fill.customer_id) == (Decimal("0.25"), "taker", alice.customer.id)
    assert fill.venue_trade_id == str(stub.order(order.id.hex).trades[0]["id"])
    assert [(u.customer_id, u.order["status"], len(u.fills)) for u in published] == [(alice.customer.id, "FILLED", 1)]
    assert stub.posts(order.id.hex) == 1
    assert reconcile_unknown_orders() == 0  # done: nothing UNKNOWN is left


def test_dropped_order_stays_unknown_until_the_recv_window_has_passed(
    stub: BinanceStub, alice: Any, published: list[OrderUpdate], django_capture_on_commit_callbacks: Any
) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    order = timed_out(stub, stored_order(alice), venue_stub.drop(1.0))
    assert reconcile_unknown_orders() == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.UNKNOWN.value
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile_unknown_orders() == 1
    order.refresh_from_db()
    assert (order.status, order.reason) == (OrderStatus.REJECTED.value, Reason.VENUE_TIMEOUT.value)
    assert not Fill.objects.filter(order=order).exists()
    assert stub.placed(order.id.hex) == 0
    assert [u.order["reason"] for u in published] == [Reason.VENUE_TIMEOUT.value]


def test_only_unknown_live_orders_are_asked_for(stub: BinanceStub, alice: Any, published: list[OrderUpdate]) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    working = stored_order(alice, status=OrderStatus.NEW)
    paper = stored_order(alice, status=OrderStatus.UNKNOWN, venue="paper")
    assert reconcile_unknown_orders() == 0
    assert stub.requests == []
    for order in (working, paper):
        version = order.version
        order.refresh_from_db()
        assert order.version == version


def test_an_order_changed_meanwhile_is_not_overwritten(stub: BinanceStub, alice: Any, monkeypatch: Any) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    order = timed_out(stub, stored_order(alice), venue_stub.fill(delay_s=1.0))
    real_query = reconcile_module._query_all

    async def query_then_race(orders: Any) -> Any:
        answers = await real_query(orders)
        # Another reconciliation run wrote it between our venue query and our write.
        await sync_to_async(lambda: Order.objects.filter(pk=order.pk).update(status="FILLED", version=5))()
        return answers

    monkeypatch.setattr(reconcile_module, "_query_all", query_then_race)
    assert reconcile_unknown_orders() == 0
    order.refresh_from_db()
    assert order.version == 5
    assert not Fill.objects.filter(order=order).exists()


def test_the_beat_task_runs_the_reconciliation(stub: BinanceStub, alice: Any, published: list[OrderUpdate]) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    order = timed_out(stub, stored_order(alice), venue_stub.fill(delay_s=1.0))
    assert reconcile_unknown_orders_task.apply().get() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.FILLED.value
