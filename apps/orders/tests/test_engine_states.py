"""The engine through the order state machine: races and stale events refused by the table, UNKNOWN live
orders left to the reconciler, reports with every fill so far, and a market buy held to its lock.

Same book and personas as test_engine.py: asks 100 x 1, 101 x 2, 102 x 5; bids 99 x 1, 98 x 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.orders.domain.matching import Match
from apps.orders.domain.types import OrderStatus, Reason
from apps.orders.models import Fill, Order
from apps.orders.services import live
from apps.orders.services.engine import FillReport
from apps.orders.services.engine.messages import LiveOutcome
from apps.orders.services.live import LiveOrder, VenueOutcome
from apps.orders.services.live import reconcile as reconcile_module
from apps.orders.tests.test_engine import GRANTS, Driver, balance, known_book, place, publish_trade
from apps.orders.tests.test_engine_live import live_order, wait_for_outcome
from conftest import Persona

D = Decimal
ENGINE_LOG = "apps.orders.services.engine.core"


@pytest.fixture
def engine(db: None, settings: Any) -> Iterator[Driver]:
    settings.HFT_PAPER_GRANTS = GRANTS
    settings.HFT_PAPER_START_GRACE_S = 0
    known_book()
    driver = Driver()
    yield driver
    driver.runtime.live.stop()


def refused(caplog: pytest.LogCaptureFixture, order: Order, event: str) -> bool:
    return any(
        str(order.id) in r.getMessage() and f"{event} is not allowed" in r.getMessage()
        for r in caplog.records
        if r.name == ENGINE_LOG
    )


# --- races and stale events, refused by the table ---------------------------------------------------------


def test_cancel_queued_behind_the_trade_that_fills_the_order_is_refused_and_reports_filled(
    engine: Driver, alice: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    order = place(alice, "buy", "1", price="99.5")
    engine.submit(order)

    publish_trade("99.4", "3", "sell")  # queued first: the fill wins the race
    report = engine.cancel(order)[order.id]

    assert (report.status, report.filled_quantity, len(report.fills)) == (OrderStatus.FILLED, D(1), 1)
    assert refused(caplog, order, "cancel")
    order.refresh_from_db()
    assert (order.status, order.reason) == ("FILLED", "")
    assert balance(alice, "BTC") == (D(3), D(0))


def test_trade_queued_behind_the_cancel_finds_nothing_to_fill(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", price="99.5")
    engine.submit(order)

    future = engine.runtime.request("cancel", [order.id], Reason.CANCELED_BY_CUSTOMER)
    publish_trade("99.4", "3", "sell")
    engine.run()

    assert future.result(timeout=0)[order.id].status == OrderStatus.CANCELED
    assert not Fill.objects.filter(order=order).exists()
    assert balance(alice, "USDT") == (D("100000"), D(0))


def test_a_fill_for_a_canceled_order_is_refused_and_changes_nothing(
    engine: Driver, alice: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    order = place(alice, "buy", "1", price="99.5")
    engine.submit(order)
    canceled = engine.cancel(order)[order.id]

    applied = engine.runtime.engine.fill(order.id, Match(D("99.5"), D(1), "maker"))  # a stale match
    engine.run()

    assert applied is False
    assert refused(caplog, order, "fill")
    again = engine.cancel(order)[order.id]
    assert (again.status, again.version, again.fills) == (OrderStatus.CANCELED, canceled.version, ())
    assert not Fill.objects.filter(order=order).exists()
    assert balance(alice, "USDT") == (D("100000"), D(0))


def test_cancel_of_a_filled_order_reports_filled_after_a_restart_too(
    engine: Driver, alice: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    order = place(alice, "buy", "1", kind="market", tif="IOC")
    filled = engine.submit(order)[order.id]

    restarted = Driver()  # holds nothing: the order is read from the database
    report = restarted.cancel(order)[order.id]

    assert (report.status, report.version, report.fills) == (OrderStatus.FILLED, filled.version, filled.fills)
    assert refused(caplog, order, "cancel")


def test_duplicate_submit_of_an_executed_order_is_refused_by_the_table(
    engine: Driver, alice: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    order = place(alice, "buy", "1", price="100")
    first = engine.submit(order)[order.id]

    restarted = Driver()  # not in memory: only the stored status (FILLED) can refuse it
    again = restarted.submit(order)[order.id]

    assert first.status == OrderStatus.FILLED
    assert (again.status, again.version, again.fills) == (first.status, first.version, first.fills)
    assert refused(caplog, order, "accept")
    assert Fill.objects.filter(order=order).count() == 1
    assert balance(alice, "BTC") == (D(3), D(0))


# --- live orders ------------------------------------------------------------------------------------------


def outcome(status: OrderStatus, *fills: FillReport, trade_ids: tuple[str, ...] = ()) -> VenueOutcome:
    filled = sum((f.quantity for f in fills), D(0))
    return VenueOutcome(
        status, "", "V-1", filled, D("100") if fills else None, D("0.02") * len(fills), "USDT", fills, trade_ids
    )


FILL_1 = FillReport(D("100"), D("0.2"), D("0.02"), "USDT", "taker", 1)
FILL_2 = FillReport(D("100"), D("0.3"), D("0.02"), "USDT", "taker", 2)


@pytest.fixture
def venue(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fake venue: `state["place"]` and `state["cancel"]` are its answers, `state["calls"]` what it was asked."""
    state: dict[str, Any] = {"calls": [], "place": outcome(OrderStatus.NEW), "cancel": outcome(OrderStatus.CANCELED)}

    async def place_live(order: LiveOrder) -> VenueOutcome:
        state["calls"].append("place")
        return state["place"]

    async def cancel_live(order: LiveOrder) -> VenueOutcome:
        state["calls"].append("cancel")
        return state["cancel"]

    monkeypatch.setattr(live, "place_live", place_live)
    monkeypatch.setattr(live, "cancel_live", cancel_live)
    return state


def test_live_fills_carry_the_venues_trade_ids(engine: Driver, alice: Persona, venue: dict[str, Any]) -> None:
    order = live_order(alice)
    venue["place"] = outcome(OrderStatus.PARTIALLY_FILLED, FILL_1, trade_ids=("T-1",))
    venue["cancel"] = outcome(OrderStatus.CANCELED, FILL_1, FILL_2, trade_ids=("T-1", "T-2"))
    engine.submit(order)
    wait_for_outcome(engine)

    report = engine.cancel(order)[order.id]
    wait_for_outcome(engine)

    assert [f.venue_trade_id for f in Fill.objects.filter(order=order)] == ["T-1", "T-2"]  # each written once
    assert len(report.fills) == 1  # reported before the venue's answer: the one fill so far


def test_a_late_fill_after_the_venues_cancel_is_refused(
    engine: Driver, alice: Persona, venue: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    order = live_order(alice)
    engine.submit(order)
    wait_for_outcome(engine)
    engine.cancel(order)
    wait_for_outcome(engine)

    engine.runtime.queue.put(LiveOutcome(order.id, outcome(OrderStatus.PARTIALLY_FILLED, FILL_1)))  # stale
    engine.run()

    assert refused(caplog, order, "partial_fill")
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("CANCELED", D(0))
    assert not Fill.objects.filter(order=order).exists()


def timed_out(engine: Driver, alice: Persona, venue: dict[str, Any]) -> Order:
    order = live_order(alice)
    venue["place"] = VenueOutcome(OrderStatus.UNKNOWN, Reason.VENUE_TIMEOUT, "", D(0), None, D(0), "")
    engine.submit(order)
    wait_for_outcome(engine)
    return order


def reconcile(monkeypatch: pytest.MonkeyPatch, answer: VenueOutcome) -> int:
    async def reconcile_live(order: LiveOrder) -> VenueOutcome:
        return answer

    async def no_adapters() -> None:
        return None

    monkeypatch.setattr(reconcile_module, "reconcile_live", reconcile_live)
    monkeypatch.setattr(reconcile_module, "aclose_adapters", no_adapters)
    monkeypatch.setattr(reconcile_module, "publish_order_updates", lambda updates: None)
    return reconcile_module.reconcile_unknown_orders()


def test_an_unknown_live_order_leaves_the_engine_to_the_reconciler(
    engine: Driver, alice: Persona, venue: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    order = timed_out(engine, alice, venue)

    assert engine.runtime.engine.known(order.id) is None
    order.refresh_from_db()
    assert (order.status, order.reason) == ("UNKNOWN", Reason.VENUE_TIMEOUT)
    assert reconcile(monkeypatch, outcome(OrderStatus.NEW)) == 1

    report = engine.cancel(order)[order.id]  # read from the database: NEW, so the venue is asked
    wait_for_outcome(engine)

    assert report.status == OrderStatus.NEW
    assert venue["calls"] == ["place", "cancel"]
    order.refresh_from_db()
    assert order.status == "CANCELED"


def test_cancel_of_an_order_reconciled_filled_reports_it_filled_and_asks_no_venue(
    engine: Driver, alice: Persona, venue: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    order = timed_out(engine, alice, venue)
    reconcile(monkeypatch, outcome(OrderStatus.FILLED, FILL_1, trade_ids=("T-9",)))

    report = engine.cancel(order)[order.id]

    assert (report.status, report.filled_quantity) == (OrderStatus.FILLED, D("0.2"))
    assert [(f.quantity, f.price) for f in report.fills] == [(D("0.2"), D("100"))]
    assert venue["calls"] == ["place"]


def test_cancel_of_a_still_unknown_order_is_refused_and_sends_nothing(
    engine: Driver, alice: Persona, venue: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    order = timed_out(engine, alice, venue)

    report = engine.cancel(order)[order.id]

    assert report.status == OrderStatus.UNKNOWN
    assert refused(caplog, order, "cancel")
    assert venue["calls"] == ["place"]
    assert engine.runtime.engine.known(order.id) is None


# --- reports carry every fill so far ------------------------------------------------------------------------


def test_submit_arriving_after_a_reload_executed_the_order_reports_its_fills(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "2", kind="market", tif="IOC")  # committed; the engine restarts first

    restarted = Driver()
    report = restarted.submit(order)[order.id]

    assert report.status == OrderStatus.FILLED
    assert [(f.price, f.quantity) for f in report.fills] == [(D(100), D(1)), (D(101), D(1))]
    assert report.filled_quantity == D(2)


def test_cancel_reports_the_fills_a_trade_made_earlier(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", price="99.5")
    engine.submit(order)
    publish_trade("99.4", "0.4", "sell")
    engine.run()

    report = engine.cancel(order)[order.id]

    assert (report.status, report.filled_quantity) == (OrderStatus.CANCELED, D("0.4"))
    assert [(f.price, f.quantity, f.liquidity) for f in report.fills] == [(D("99.5"), D("0.4"), "maker")]


def test_reports_of_orders_read_from_the_database_cost_the_same_queries_for_one_or_nine(
    engine: Driver, alice: Persona
) -> None:
    orders = [place(alice, "buy", "0.1", price="99.5") for _ in range(10)]
    engine.submit(*orders)
    publish_trade("99.4", "1", "sell")
    engine.run()
    assert Order.objects.filter(id__in=[o.id for o in orders], status="FILLED").count() == 10

    restarted = Driver()  # holds none of them: orders and fills are read, one query each
    with CaptureQueriesContext(connection) as one:
        single = restarted.cancel(orders[0])[orders[0].id]
    with CaptureQueriesContext(connection) as many:
        reports = restarted.cancel(*orders[1:])

    assert [(f.price, f.quantity) for f in single.fills] == [(D("99.5"), D("0.1"))]
    assert [len(r.fills) for r in reports.values()] == [1] * 9
    assert len(many.captured_queries) == len(one.captured_queries) == 2


# --- a market buy never spends more than it locked ----------------------------------------------------------


def test_market_buy_walks_no_further_than_the_price_its_lock_pays_for(
    engine: Driver, alice: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    # Locked when the mid was lower: 2 x 100.5 (+ the taker fee); the protection band around today's mid
    # (99.5) would let it walk to 104.5, through 101 and 102.
    order = place(alice, "buy", "2", kind="market", tif="IOC", lock_price=D("100.5"))
    locked = D("100.5") * 2 * D("1.001")

    report = engine.submit(order)[order.id]

    assert (report.status, report.reason, report.filled_quantity) == (OrderStatus.EXPIRED, Reason.IOC_REMAINDER, D(1))
    assert [f.price for f in report.fills] == [D(100)]
    spent = D(100) + report.fees
    assert spent <= locked
    assert balance(alice, "USDT") == (D("100000") - spent, D(0))


def test_market_buy_locked_at_the_walk_fills_whole(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "2", kind="market", tif="IOC", lock_price=D("101"))

    report = engine.submit(order)[order.id]

    assert (report.status, report.average_price) == (OrderStatus.FILLED, D("100.5"))
    assert balance(alice, "USDT") == (D("100000") - D("201") - report.fees, D(0))
