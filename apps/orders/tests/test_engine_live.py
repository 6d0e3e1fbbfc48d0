"""Non-paper orders: the engine hands them to the live adapter and writes the venue's outcome like its own.

The adapter's `place_live` / `cancel_live` are replaced by fakes that answer as a venue would; the adapter
itself is tested against its venue stub (test_live*.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from apps.orderbook.models import Instrument
from apps.orders.domain.types import OrderStatus, Reason
from apps.orders.models import Balance, Fill, Order
from apps.orders.services import live
from apps.orders.services.engine import FillReport
from apps.orders.services.live import LiveOrder, VenueOutcome
from apps.orders.tests.test_engine import GRANTS, Driver, known_book
from conftest import Persona

D = Decimal


def live_order(persona: Persona, qty: str = "0.5") -> Order:
    with transaction.atomic():
        return Order.objects.create(
            customer=persona.customer,
            client_order_id=uuid.uuid4().hex[:20],
            instrument=Instrument.objects.get(symbol="BTC-USDT"),
            venue="binance",
            side="buy",
            type="limit",
            time_in_force="GTC",
            price=D("100"),
            quantity=D(qty),
            status=OrderStatus.PENDING,
        )


def wait_for_outcome(driver: Driver) -> None:
    """Until the venue's answer is back on the engine's queue, then process it."""
    deadline = time.monotonic() + 5
    while driver.runtime.queue.empty():
        assert time.monotonic() < deadline, "no outcome from the live venue"
        time.sleep(0.01)
    driver.run()


def wait_until_written(driver: Driver, order: Order) -> None:
    """Until the venue's answer for `order` is written, processing whatever the engine's queue holds."""
    deadline = time.monotonic() + 5
    while True:
        driver.run()
        order.refresh_from_db()
        if order.status != OrderStatus.PENDING:
            return
        assert time.monotonic() < deadline, "no outcome from the live venue"
        time.sleep(0.01)


@pytest.fixture
def engine(db: None, settings: Any) -> Iterator[Driver]:
    settings.HFT_PAPER_GRANTS = GRANTS
    known_book()
    driver = Driver()
    yield driver
    driver.runtime.live.stop()


@pytest.fixture
def venue(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, LiveOrder]]:
    calls: list[tuple[str, LiveOrder]] = []
    fill = FillReport(D("100"), D("0.2"), D("0.02"), "USDT", "taker", 1)

    async def place(order: LiveOrder) -> VenueOutcome:
        calls.append(("place", order))
        return VenueOutcome(OrderStatus.PARTIALLY_FILLED, "", "V-1", D("0.2"), D("100"), D("0.02"), "USDT", (fill,))

    async def cancel(order: LiveOrder) -> VenueOutcome:
        calls.append(("cancel", order))
        # A venue reports every fill of the order so far: the one from placement again.
        return VenueOutcome(OrderStatus.CANCELED, "", "V-1", D("0.2"), D("100"), D("0.02"), "USDT", (fill,))

    monkeypatch.setattr(live, "place_live", place)
    monkeypatch.setattr(live, "cancel_live", cancel)
    return calls


def test_live_order_goes_to_its_venue_and_its_outcome_is_written(
    engine: Driver, alice: Persona, venue: list[tuple[str, Any]]
) -> None:
    order = live_order(alice)

    immediate = engine.submit(order)[order.id]
    wait_for_outcome(engine)

    assert immediate.status == OrderStatus.PENDING  # the venue answers later, through the queue
    assert [(kind, sent.client_order_id, sent.venue) for kind, sent in venue] == [
        ("place", order.client_order_id, "binance")
    ]
    order.refresh_from_db()
    assert (order.status, order.venue_order_id, order.filled_quantity) == ("PARTIALLY_FILLED", "V-1", D("0.2"))
    assert Fill.objects.filter(order=order).count() == 1
    assert not Balance.objects.filter(customer=alice.customer).exists()  # the venue holds the funds


def test_live_cancel_asks_the_venue_and_writes_no_fill_twice(
    engine: Driver, alice: Persona, venue: list[tuple[str, Any]]
) -> None:
    order = live_order(alice)
    engine.submit(order)
    wait_for_outcome(engine)

    engine.cancel(order, reason=Reason.CANCELED_BY_CUSTOMER)
    wait_for_outcome(engine)

    order.refresh_from_db()
    assert order.status == "CANCELED"
    assert [kind for kind, _ in venue] == ["place", "cancel"]
    assert Fill.objects.filter(order=order).count() == 1


def test_a_live_order_is_sent_once_however_often_it_is_submitted(
    engine: Driver, alice: Persona, venue: list[tuple[str, Any]]
) -> None:
    order = live_order(alice)

    engine.submit(order)
    engine.submit(order)  # its run may already take in the venue's answer: wait on the order, not the queue
    wait_until_written(engine, order)
    engine.submit(order)

    assert [kind for kind, _ in venue] == ["place"]
