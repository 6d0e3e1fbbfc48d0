"""The Binance spot adapter against the loopback stub: fills, partials, refusals, timeouts, cancels, keys."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.orders.domain.types import OrderStatus, OrderType, Reason, Side, TimeInForce
from apps.orders.services.credentials import store_venue_credential
from apps.orders.services.live import LiveOrder, cancel_live, place_live, reconcile_live
from apps.orders.tests import venue_stub
from apps.orders.tests.venue_stub import ALICE_API_KEY, ALICE_API_SECRET, BinanceStub, run_live

pytestmark = pytest.mark.django_db


@pytest.fixture
def stub(settings: Any) -> Iterator[BinanceStub]:
    server = venue_stub.serve_binance(settings, timeout_s=0.5)
    yield server
    server.stop()


@pytest.fixture
def alice_on_binance(alice: Any) -> Any:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    return alice


def order_for(persona: Any, **changes: Any) -> LiveOrder:
    order = LiveOrder(
        order_id=uuid.uuid4(),
        customer_id=persona.customer.id,
        client_order_id=f"alice-{uuid.uuid4().hex[:8]}",
        symbol="BTC-USDT",
        venue="binance",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=Decimal("49000.5"),
        quantity=Decimal("0.25"),
    )
    return dataclasses.replace(order, **changes)


def test_market_order_fills_with_exact_decimals(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance, type=OrderType.MARKET, time_in_force=TimeInForce.IOC, price=None)
    outcome = run_live(place_live, order)
    assert outcome.status == OrderStatus.FILLED
    assert (outcome.filled_quantity, outcome.average_price) == (Decimal("0.25"), Decimal("50000"))
    assert (outcome.fees, outcome.fee_currency) == (Decimal("12.5"), "USDT")  # 0.1% of 12,500
    assert [(fill.quantity, fill.liquidity) for fill in outcome.fills] == [(Decimal("0.25"), "taker")]
    sent = stub.requests[-1][2]
    assert (sent["symbol"], sent["quantity"], sent["type"]) == ("BTCUSDT", "0.25", "MARKET")  # Listing's symbol


def test_ioc_partially_filled_expires_the_remainder(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance, time_in_force=TimeInForce.IOC)
    stub.plan(order.venue_client_order_id, venue_stub.fill("0.1"))
    outcome = run_live(place_live, order)
    assert (outcome.status, outcome.reason) == (OrderStatus.EXPIRED, Reason.IOC_REMAINDER.value)
    assert outcome.filled_quantity == Decimal("0.1")
    assert outcome.average_price == Decimal("49000.5")


def test_gtc_partially_filled_rests(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance)
    stub.plan(order.venue_client_order_id, venue_stub.fill("0.05"))
    outcome = run_live(place_live, order)
    assert (outcome.status, outcome.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, Decimal("0.05"))
    assert stub.order(order.venue_client_order_id).status == "PARTIALLY_FILLED"


def test_post_only_that_would_take_is_rejected(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance, time_in_force=TimeInForce.POST_ONLY)
    stub.plan(order.venue_client_order_id, venue_stub.reject(-2010, "Order would immediately match and take."))
    outcome = run_live(place_live, order)
    assert (outcome.status, outcome.reason) == (OrderStatus.REJECTED, Reason.POST_ONLY_WOULD_TAKE.value)
    assert outcome.venue_code == -2010
    assert stub.requests[-1][2]["type"] == "LIMIT_MAKER"
    assert stub.placed(order.venue_client_order_id) == 0


def test_insufficient_balance_at_the_venue_is_rejected(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance)
    message = "Account has insufficient balance for requested action."
    stub.plan(order.venue_client_order_id, venue_stub.reject(-2010, message))
    outcome = run_live(place_live, order)
    assert (outcome.status, outcome.reason) == (OrderStatus.REJECTED, Reason.INSUFFICIENT_BALANCE.value)


def test_timeout_leaves_order_unknown_then_reconcile_finds_it_filled_exactly_once(
    stub: BinanceStub, alice_on_binance: Any
) -> None:
    order = order_for(alice_on_binance)
    stub.plan(order.venue_client_order_id, venue_stub.fill(delay_s=2.0))  # created, answered too late
    outcome = run_live(place_live, order)
    assert (outcome.status, outcome.reason) == (OrderStatus.UNKNOWN, Reason.VENUE_TIMEOUT.value)
    reconciled = run_live(reconcile_live, order)
    assert reconciled.status == OrderStatus.FILLED
    assert reconciled.filled_quantity == Decimal("0.25")
    assert [fill.liquidity for fill in reconciled.fills] == ["taker"]
    assert reconciled.venue_trade_ids == (str(stub.order(order.venue_client_order_id).trades[0]["id"]),)
    assert stub.posts(order.venue_client_order_id) == 1  # never re-sent
    assert stub.placed(order.venue_client_order_id) == 1  # never duplicated


def test_dropped_order_stays_unknown_inside_recv_window_then_is_rejected(
    stub: BinanceStub, alice_on_binance: Any, settings: Any
) -> None:
    order = order_for(alice_on_binance)
    stub.plan(order.venue_client_order_id, venue_stub.drop(2.0))
    assert run_live(place_live, order).status == OrderStatus.UNKNOWN
    just_sent = dataclasses.replace(order, sent_before=datetime.now(UTC))
    assert run_live(reconcile_live, just_sent).status == OrderStatus.UNKNOWN  # could still reach the venue
    window = timedelta(milliseconds=settings.HFT_LIVE_RECV_WINDOW_MS, seconds=settings.HFT_LIVE_RECONCILE_GRACE_S)
    long_ago = dataclasses.replace(order, sent_before=datetime.now(UTC) - window - timedelta(seconds=1))
    outcome = run_live(reconcile_live, long_ago)
    assert (outcome.status, outcome.reason) == (OrderStatus.REJECTED, Reason.VENUE_TIMEOUT.value)
    assert stub.placed(order.venue_client_order_id) == 0
    assert stub.posts(order.venue_client_order_id) == 1


def test_cancel_of_a_resting_order_cancels_it(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance)
    assert run_live(place_live, order).status == OrderStatus.NEW
    outcome = run_live(cancel_live, order)
    assert (outcome.status, outcome.reason) == (OrderStatus.CANCELED, Reason.CANCELED_BY_CUSTOMER.value)
    assert stub.order(order.venue_client_order_id).status == "CANCELED"


def test_cancel_of_a_partly_filled_order_reports_its_fills(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance)
    assert run_live(place_live, order).status == OrderStatus.NEW
    resting = stub.order(order.venue_client_order_id)
    stub.trade(resting, Decimal("49000.5"), Decimal("0.1"), is_maker=True)  # the market came to it
    outcome = run_live(cancel_live, order)
    assert (outcome.status, outcome.filled_quantity) == (OrderStatus.CANCELED, Decimal("0.1"))
    assert [(fill.quantity, fill.liquidity) for fill in outcome.fills] == [(Decimal("0.1"), "maker")]


def test_cancel_of_a_filled_order_answers_filled(stub: BinanceStub, alice_on_binance: Any) -> None:
    order = order_for(alice_on_binance)
    stub.plan(order.venue_client_order_id, venue_stub.fill())
    assert run_live(place_live, order).status == OrderStatus.FILLED
    assert run_live(cancel_live, order).status == OrderStatus.FILLED


def test_a_key_the_venue_does_not_know_is_rejected_as_auth_failure(stub: BinanceStub, alice: Any) -> None:
    store_venue_credential(alice.customer.id, "binance", "revoked-key", ALICE_API_SECRET)
    outcome = run_live(place_live, order_for(alice))
    assert (outcome.status, outcome.reason, outcome.venue_code) == (
        OrderStatus.REJECTED,
        Reason.VENUE_AUTH_FAILED.value,
        -2015,
    )


def test_a_wrong_secret_fails_the_signature_check(stub: BinanceStub, alice: Any) -> None:
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, "not-alice-secret")
    outcome = run_live(place_live, order_for(alice))
    assert (outcome.reason, outcome.venue_code) == (Reason.VENUE_AUTH_FAILED.value, -1022)


def test_without_a_credential_nothing_is_sent(stub: BinanceStub, bob: Any) -> None:
    outcome = run_live(place_live, order_for(bob))
    assert (outcome.status, outcome.reason) == (OrderStatus.REJECTED, Reason.VENUE_CREDENTIALS_MISSING.value)
    assert stub.requests == []


def test_each_customer_trades_with_their_own_key(stub: BinanceStub, alice_on_binance: Any, bob: Any) -> None:
    store_venue_credential(bob.customer.id, "binance", venue_stub.BOB_API_KEY, venue_stub.BOB_API_SECRET)
    alices, bobs = order_for(alice_on_binance), order_for(bob)
    run_live(place_live, alices)
    run_live(place_live, bobs)
    assert stub.order(alices.venue_client_order_id).api_key == ALICE_API_KEY
    assert stub.order(bobs.venue_client_order_id).api_key == venue_stub.BOB_API_KEY
    # bob's key cannot see alice's order: the venue scopes client order ids per account
    assert run_live(reconcile_live, dataclasses.replace(alices, customer_id=bob.customer.id)).status == (
        OrderStatus.UNKNOWN
    )


def test_an_unreachable_venue_rejects_without_sending(settings: Any, alice_on_binance: Any) -> None:
    settings.HFT_LIVE_VENUES = {"binance": {"adapter": "binance_spot", "base_url": "http://127.0.0.1:9"}}
    outcome = run_live(place_live, order_for(alice_on_binance))
    assert (outcome.status, outcome.reason) == (OrderStatus.REJECTED, Reason.VENUE_UNAVAILABLE.value)
