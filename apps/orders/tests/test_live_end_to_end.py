"""A live order end to end: the orders API, the engine's live bridge, the Binance stub, and reconciliation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps.orders.models import Fill, Order
from apps.orders.services.credentials import store_venue_credential
from apps.orders.services.live.reconcile import reconcile_unknown_orders
from apps.orders.tests import venue_stub
from apps.orders.tests.conftest import SteppedEngineClient
from apps.orders.tests.venue_stub import ALICE_API_KEY, ALICE_API_SECRET, BinanceStub
from conftest import Persona

# The live bridge reads credentials on its own thread: the rows must be committed (transaction=True); the seeded
# tiers and instruments come back after each test (serialized_rollback).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
BATCH = "/api/hft/orders/batch"


@pytest.fixture
def stub(settings: Any) -> Iterator[BinanceStub]:
    server = venue_stub.serve_binance(settings, timeout_s=0.5)
    yield server
    server.stop()


def live_order(cid: str, **extra: Any) -> dict[str, Any]:
    body = {"client_order_id": cid, "pair": "BTC-USDT", "side": "buy", "price": "64000", "quantity": "0.1"}
    return {**body, "venue": "binance", **extra}


def settle(engine: SteppedEngineClient, order_id: str, wanted: set[str], timeout_s: float = 5) -> Order:
    """Step the engine until the live outcome is written (the bridge answers from its own thread)."""
    deadline = time.monotonic() + timeout_s
    while True:
        engine.runtime.run_pending()
        order = Order.objects.get(pk=order_id)
        if order.status in wanted or time.monotonic() > deadline:
            return order
        time.sleep(0.02)


def test_live_order_placed_through_the_api_is_filled_at_the_venue(
    stub: BinanceStub, paper_engine: SteppedEngineClient, alice: Persona
) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    stub.plan_next(venue_stub.fill())
    body = alice.client().post(BATCH, {"orders": [live_order("live-1")]}, format="json").json()
    order_id = body["results"][0]["order"]["id"]
    order = settle(paper_engine, order_id, {"FILLED", "REJECTED"})
    assert order.status == "FILLED", (order.status, order.reason)
    assert Fill.objects.filter(order=order).count() == 1
    assert stub.posts(order_id.replace("-", "")) == 1


def test_live_order_that_times_out_is_unknown_then_reconciled_once(
    stub: BinanceStub, paper_engine: SteppedEngineClient, alice: Persona
) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    stub.plan_next(venue_stub.fill(delay_s=2.0))
    body = alice.client().post(BATCH, {"orders": [live_order("live-2")]}, format="json").json()
    order_id = body["results"][0]["order"]["id"]
    venue_id = order_id.replace("-", "")
    order = settle(paper_engine, order_id, {"UNKNOWN", "FILLED", "REJECTED"})
    assert (order.status, order.reason) == ("UNKNOWN", "venue_timeout")
    assert reconcile_unknown_orders() == 1
    order.refresh_from_db()
    assert order.status == "FILLED"
    assert Fill.objects.filter(order=order).count() == 1
    assert (stub.posts(venue_id), stub.placed(venue_id)) == (1, 1)


def test_cancel_of_a_partly_filled_live_order_records_each_fill_once(
    stub: BinanceStub, paper_engine: SteppedEngineClient, alice: Persona
) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    stub.plan_next(venue_stub.fill("0.04"))
    body = alice.client().post(BATCH, {"orders": [live_order("live-3")]}, format="json").json()
    order_id = body["results"][0]["order"]["id"]
    order = settle(paper_engine, order_id, {"PARTIALLY_FILLED", "REJECTED", "UNKNOWN"})
    assert order.status == "PARTIALLY_FILLED", (order.status, order.reason)
    response = alice.client().delete(f"/api/hft/orders/{order_id}")
    assert response.status_code in {200, 202}, response.content
    order = settle(paper_engine, order_id, {"CANCELED"})
    assert order.status == "CANCELED"
    assert Fill.objects.filter(order=order).count() == 1  # the immediate fill, not again from the cancel's answer


def test_a_cancel_after_reconciliation_leaves_the_filled_order_as_it_is(
    stub: BinanceStub, paper_engine: SteppedEngineClient, alice: Persona
) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    stub.plan_next(venue_stub.fill(delay_s=2.0))
    body = alice.client().post(BATCH, {"orders": [live_order("live-4")]}, format="json").json()
    order_id = body["results"][0]["order"]["id"]
    assert settle(paper_engine, order_id, {"UNKNOWN", "FILLED", "REJECTED"}).status == "UNKNOWN"
    assert reconcile_unknown_orders() == 1
    alice.client().delete(f"/api/hft/orders/{order_id}")
    time.sleep(0.3)  # let a (wrong) live cancel come back, if one was sent
    order = settle(paper_engine, order_id, set(), timeout_s=0.3)
    assert (order.status, order.version) == ("FILLED", 3), (order.status, order.version)
    assert Fill.objects.filter(order=order).count() == 1
