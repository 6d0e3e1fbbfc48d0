"""The paper engine against a known book published through the in-process bus, driven on the test's thread.

The book (consolidated:BTC-USDT): bids 99 x 1, 98 x 2; asks 100 x 1, 101 x 2, 102 x 5. Alice is on the
professional tier (maker 5 bps, taker 10 bps), Bob on the free tier (maker 10, taker 20).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from django.db import transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from apps.orderbook.domain.events import DELTA, SNAPSHOT, BookEvent, Trade
from apps.orderbook.models import Instrument
from apps.orderbook.services.market import get_bus, get_hub
from apps.orders.domain.types import OrderStatus, Reason
from apps.orders.models import Balance, Fill, Order
from apps.orders.services.balances import Ledger
from apps.orders.services.engine import ExecutionReport, FillReport
from apps.orders.services.engine.runtime import EngineRuntime
from apps.orders.services.engine.state import Batch, EngineOrder
from apps.orders.services.engine.store import placed_order
from apps.orders.services.rules import instrument_rules
from conftest import Persona

BOOK = "consolidated:BTC-USDT"
D = Decimal
GRANTS = {"USDT": "100000", "BTC": "2"}
MARKET_CAP = D("110")  # what a market buy locks per unit in these tests (placement's protection price)


def level(price: str, qty: str) -> tuple[int, int]:
    return int(D(price) * 100), int(D(qty) * 10_000)  # the book's exponents: price 2, size 4


def publish_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], kind: str = SNAPSHOT) -> None:
    event = BookEvent(
        BOOK,
        0,
        kind,
        tuple(level(p, q) for p, q in bids),
        tuple(level(p, q) for p, q in asks),
        2,
        4,
        None,
        time.time_ns(),
        0,
    )
    get_bus().publish([event], time.time_ns())


def publish_trade(price: str, qty: str, aggressor: str) -> None:
    # The simulated venue's listing has exponents 8 and 8.
    trade = Trade("sim", "BTC-USDT", uuid.uuid4().hex, int(D(price) * 10**8), int(D(qty) * 10**8), aggressor, None, 0)
    get_bus().publish_trades([trade])


def known_book() -> None:
    publish_book([("99", "1"), ("98", "2")], [("100", "1"), ("101", "2"), ("102", "5")])


def place(
    persona: Persona,
    side: str,
    qty: str,
    *,
    price: str | None = None,
    tif: str = "GTC",
    kind: str = "limit",
    lock_price: Decimal = MARKET_CAP,
) -> Order:
    """A PENDING order with its funds locked, as placement commits it (a market buy at `lock_price`)."""
    customer_id = persona.customer.id
    with transaction.atomic():
        order = Order(
            customer=persona.customer,
            client_order_id=uuid.uuid4().hex[:20],
            instrument=Instrument.objects.get(symbol="BTC-USDT"),
            venue="paper",
            side=side,
            type=kind,
            time_in_force=tif,
            price=D(price) if price is not None else None,
            quantity=D(qty),
            status=OrderStatus.PENDING,
        )
        ledger = Ledger.lock({(customer_id, "BTC"), (customer_id, "USDT")})
        if side == "buy":
            ledger.hold(order, "USDT", (D(price) if price else lock_price) * D(qty) * D("1.001"))
        else:
            ledger.hold(order, "BTC", D(qty))
        ledger.save()
        order.save()
    return order


def placed(order: Order) -> EngineOrder:
    """The order as placement hands it to the engine (the instance it inserted, not a read-back)."""
    return placed_order(order, tier_id=order.customer.tier_id, rules=instrument_rules(order.instrument))


def balance(persona: Persona, currency: str) -> tuple[Decimal, Decimal]:
    row = Balance.objects.get(customer=persona.customer, currency=currency)
    return row.available, row.locked


class Driver:
    """An engine runtime run by hand on the test's thread; `published` collects the updates it sent."""

    def __init__(self) -> None:
        self.published: list[Batch] = []
        self.runtime = EngineRuntime(get_hub(), publish=lambda batch, _: self.published.append(batch))
        self.runtime.listen()
        self.runtime.reload()

    def submit(self, *orders: Order) -> dict[uuid.UUID, ExecutionReport]:
        future = self.runtime.request("submit", [o.id for o in orders])
        self.runtime.run_pending()
        return future.result(timeout=0)

    def cancel(self, *orders: Order, reason: Reason = Reason.CANCELED_BY_CUSTOMER) -> dict[uuid.UUID, ExecutionReport]:
        future = self.runtime.request("cancel", [o.id for o in orders], reason)
        self.runtime.run_pending()
        return future.result(timeout=0)

    def run(self) -> None:
        self.runtime.run_pending()


@pytest.fixture
def engine(db: None, settings: Any) -> Iterator[Driver]:
    settings.HFT_PAPER_GRANTS = GRANTS
    settings.HFT_PAPER_START_GRACE_S = 0
    known_book()
    driver = Driver()
    yield driver
    driver.runtime.live.stop()  # its event loop thread, if a live order started one


def test_market_buy_walks_the_book_and_pays_the_taker_fee(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "2", kind="market", tif="IOC")

    report = engine.submit(order)[order.id]

    assert report.status == OrderStatus.FILLED
    assert [(f.price, f.quantity, f.liquidity) for f in report.fills] == [
        (D(100), D(1), "taker"),
        (D(101), D(1), "taker"),
    ]
    assert report.average_price == D("100.5")
    assert report.fees == D("0.201")  # 10 bps of 201
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.average_price, order.fees) == (
        "FILLED",
        2,
        D("100.5"),
        D("0.201"),
    )
    assert Fill.objects.filter(order=order).count() == 2


def test_filled_buy_settles_balances_and_releases_the_rest_of_its_lock(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "2", kind="market", tif="IOC")

    engine.submit(order)

    assert balance(alice, "USDT") == (D("100000") - D("201") - D("0.201"), D(0))
    assert balance(alice, "BTC") == (D("2") + D("2"), D(0))


def test_ioc_takes_what_crosses_and_expires_the_remainder(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "5", price="101", tif="IOC")

    report = engine.submit(order)[order.id]

    assert (report.status, report.reason, report.filled_quantity) == (OrderStatus.EXPIRED, Reason.IOC_REMAINDER, D(3))
    assert balance(alice, "USDT")[1] == D(0)  # nothing stays locked behind an expired order


def test_fok_that_cannot_fill_whole_expires_untouched(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "4", price="101", tif="FOK")

    report = engine.submit(order)[order.id]

    assert (report.status, report.reason, report.fills) == (OrderStatus.EXPIRED, Reason.FOK_NOT_FILLABLE, ())
    assert balance(alice, "USDT") == (D("100000"), D(0))
    assert not Fill.objects.exists()


def test_fok_that_can_fill_fills_whole(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "3", price="101", tif="FOK")

    assert engine.submit(order)[order.id].status == OrderStatus.FILLED


def test_post_only_that_would_take_is_rejected(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", price="100", tif="POST_ONLY")

    report = engine.submit(order)[order.id]

    assert (report.status, report.reason) == (OrderStatus.REJECTED, Reason.POST_ONLY_WOULD_TAKE)
    assert balance(alice, "USDT") == (D("100000"), D(0))


def test_gtc_partly_filled_rests_its_remainder(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "2", price="100")

    report = engine.submit(order)[order.id]

    assert (report.status, report.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, D(1))
    _, locked = balance(alice, "USDT")
    assert locked == D("100") * D("2") * D("1.001") - D("100") - D("0.1")  # the rest is still locked


def test_resting_buy_is_filled_as_maker_by_a_later_trade_through_its_price(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", price="99.5")
    assert engine.submit(order)[order.id].status == OrderStatus.NEW

    publish_trade("99.4", "3", "sell")
    engine.run()

    order.refresh_from_db()
    assert (order.status, order.average_price, order.fees) == ("FILLED", D("99.5"), D("0.04975"))  # 5 bps maker
    fill = Fill.objects.get(order=order)
    assert (fill.liquidity, fill.price) == ("maker", D("99.5"))
    assert balance(alice, "USDT")[1] == D(0)
    assert balance(alice, "BTC") == (D(3), D(0))


def test_a_trade_at_the_resting_price_does_not_fill_it(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", price="99.5")
    engine.submit(order)

    publish_trade("99.5", "3", "sell")
    engine.run()

    order.refresh_from_db()
    assert order.status == "NEW"


def test_resting_sell_is_filled_by_a_book_that_crosses_it(engine: Driver, alice: Persona) -> None:
    order = place(alice, "sell", "1", price="100.5")
    assert engine.submit(order)[order.id].status == OrderStatus.NEW

    publish_book([("100.6", "0.4")], [], kind=DELTA)
    engine.run()

    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("PARTIALLY_FILLED", D("0.4"))
    assert balance(alice, "BTC") == (D("1"), D("0.6"))
    assert balance(alice, "USDT")[0] == D("100000") + D("40.2") - D("0.0201")


def test_fees_follow_the_tier(engine: Driver, alice: Persona, bob: Persona) -> None:
    alices = place(alice, "buy", "1", kind="market", tif="IOC")
    bobs = place(bob, "buy", "1", kind="market", tif="IOC")

    reports = engine.submit(alices, bobs)

    # Alice takes the 1 at 100, so Bob's order finds 101 (liquidity paper takers used is used).
    assert reports[alices.id].fees == D("0.1")  # professional: 10 bps taker of 100
    assert reports[bobs.id].fees == D("0.202")  # free: 20 bps taker of 101


def test_takers_do_not_take_the_same_liquidity_twice(engine: Driver, alice: Persona, bob: Persona) -> None:
    first = place(alice, "buy", "1.5", kind="market", tif="IOC")
    second = place(bob, "buy", "1", kind="market", tif="IOC")

    reports = engine.submit(first, second)

    assert [(f.price, f.quantity) for f in reports[first.id].fills] == [(D(100), D(1)), (D(101), D("0.5"))]
    assert [(f.price, f.quantity) for f in reports[second.id].fills] == [(D(101), D(1))]  # 1.5 of 101's 2 left


def test_a_level_the_venue_changes_is_whole_again(engine: Driver, alice: Persona, bob: Persona) -> None:
    engine.submit(place(alice, "buy", "1", kind="market", tif="IOC"))  # takes the 1 at 100
    publish_book([("99", "1"), ("98", "2")], [("100", "3"), ("101", "2"), ("102", "5")])  # 100 now shows 3
    engine.run()

    report = engine.submit(second := place(bob, "buy", "3", kind="market", tif="IOC"))[second.id]

    assert [(f.price, f.quantity) for f in report.fills] == [(D(100), D(3))]


def test_market_order_without_a_book_is_rejected_no_market(db: None, settings: Any, alice: Persona) -> None:
    settings.HFT_PAPER_GRANTS = GRANTS
    driver = Driver()
    order = place(alice, "buy", "1", kind="market", tif="IOC")

    report = driver.submit(order)[order.id]

    assert (report.status, report.reason) == (OrderStatus.REJECTED, Reason.NO_MARKET)
    assert balance(alice, "USDT") == (D("100000"), D(0))


def test_cancel_releases_the_lock_and_a_second_cancel_changes_nothing(engine: Driver, alice: Persona) -> None:
    order = place(alice, "sell", "1", price="105")
    engine.submit(order)

    first = engine.cancel(order)[order.id]
    second = engine.cancel(order)[order.id]

    assert (first.status, first.reason) == (OrderStatus.CANCELED, Reason.CANCELED_BY_CUSTOMER)
    assert second.version == first.version
    assert balance(alice, "BTC") == (D(2), D(0))


def test_resubmitting_an_order_never_executes_it_twice(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", kind="market", tif="IOC")
    first = engine.submit(order)[order.id]

    again = engine.submit(order)[order.id]

    assert again.version == first.version
    assert again.fills == first.fills  # the order's fills so far, none added
    assert Fill.objects.filter(order=order).count() == 1
    assert balance(alice, "BTC") == (D(3), D(0))


def test_one_batch_costs_the_same_queries_for_one_order_or_twenty(engine: Driver, alice: Persona) -> None:
    from django.db import connection

    engine.submit(place(alice, "buy", "0.01", kind="market", tif="IOC"))  # warms the fee and rules caches
    one = place(alice, "buy", "0.01", kind="market", tif="IOC")
    with CaptureQueriesContext(connection) as single:
        engine.submit(one)
    many = [place(alice, "buy", "0.01", kind="market", tif="IOC") for _ in range(20)]
    batches_before = engine.runtime.batches_written
    with CaptureQueriesContext(connection) as batch:
        engine.submit(*many)

    assert engine.runtime.batches_written == batches_before + 1
    assert Fill.objects.filter(order__in=many).count() == 20
    # Load the orders; in one transaction: UPDATE orders, INSERT fills, SELECT balances FOR UPDATE, UPDATE them.
    assert len(batch.captured_queries) == len(single.captured_queries) <= 7


def test_fills_of_many_orders_are_written_in_one_batch(engine: Driver, alice: Persona) -> None:
    orders = [place(alice, "buy", "0.1", price="99.5") for _ in range(10)]
    engine.submit(*orders)
    before = engine.runtime.batches_written

    publish_trade("99", "5", "sell")
    engine.run()

    assert engine.runtime.batches_written == before + 1
    assert Fill.objects.filter(order__in=orders).count() == 10
    batch = engine.published[-1]
    assert len(batch.orders) == 10  # one update per order, after commit
    assert len(batch.fills) == 10


def test_restart_rests_open_orders_again_and_executes_pending_ones_once(engine: Driver, alice: Persona) -> None:
    resting = place(alice, "buy", "1", price="99.5")
    engine.submit(resting)
    pending = place(alice, "buy", "1", kind="market", tif="IOC")  # committed, never submitted (a crash)

    restarted = Driver()

    pending.refresh_from_db()
    assert pending.status == "FILLED"
    late = restarted.submit(pending)[pending.id]  # the late submit finds it done, with its fill
    assert (late.status, len(late.fills)) == (OrderStatus.FILLED, 1)
    publish_trade("99", "1", "sell")
    restarted.run()
    resting.refresh_from_db()
    assert resting.status == "FILLED"
    assert Fill.objects.filter(order=pending).count() == 1
    assert Fill.objects.filter(order=resting).count() == 1


def test_cancel_of_a_pending_order_the_engine_never_saw_cancels_it(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", price="99")

    report = engine.cancel(order)[order.id]
    resubmitted = engine.submit(order)[order.id]

    assert report.status == OrderStatus.CANCELED
    assert resubmitted.status == OrderStatus.CANCELED
    assert resubmitted.fills == ()
    assert balance(alice, "USDT") == (D("100000"), D(0))


def test_an_order_changed_under_the_engine_rolls_the_batch_back_and_reloads(
    engine: Driver, alice: Persona, bob: Persona
) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the version check is PostgreSQL's UPDATE ... FROM (VALUES ...); SQLite runs one engine")
    changed = place(alice, "buy", "1", price="99.5")
    other = place(bob, "buy", "1", price="99.5")
    engine.submit(changed, other)
    # Another writer (an engine that held the lease meanwhile) filled and bumped it.
    Order.objects.filter(id=changed.id).update(status="FILLED", filled_quantity=1, version=F("version") + 1)

    publish_trade("99", "2", "sell")
    engine.run()

    assert not Fill.objects.filter(order__in=[changed, other]).exists()  # the whole batch rolled back
    assert engine.runtime.engine.known(changed.id) is None  # reloaded: FILLED is not open
    publish_trade("99", "2", "sell")
    engine.run()
    other.refresh_from_db()
    assert other.status == "FILLED"
    assert not Fill.objects.filter(order=changed).exists()


def test_a_stale_copy_carried_by_a_late_submit_never_executes_an_order_twice(engine: Driver, alice: Persona) -> None:
    """A submit carries the order as placement committed it. Should one arrive after a restarted engine has
    executed the order from the database (the copy still says PENDING), the write's version check refuses
    the batch and the engine reloads: one execution, one fill."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the version check is PostgreSQL's UPDATE ... FROM unnest; SQLite runs one in-process engine")
    order = place(alice, "buy", "1", kind="market", tif="IOC")
    stale = placed(order)
    engine.submit(order)
    restarted = Driver()  # a FILLED order is not in a new engine's memory

    future = restarted.runtime.request("submit", [order.id], orders=[stale])
    restarted.run()

    assert future.result(timeout=0) == {}  # the batch was refused: nothing reported
    order.refresh_from_db()
    assert (order.status, Fill.objects.filter(order=order).count()) == ("FILLED", 1)
    assert balance(alice, "BTC") == (D(3), D(0))
    assert restarted.runtime.engine.known(order.id) is None  # reloaded from the database


def test_an_order_that_cannot_execute_is_rejected_not_retried_forever(engine: Driver, alice: Persona) -> None:
    order = place(alice, "buy", "1", price="99")
    Order.objects.filter(id=order.id).update(price=None)  # slipped past validation somehow

    report = engine.submit(order)[order.id]

    assert (report.status, report.reason) == (OrderStatus.REJECTED, Reason.PRICE_REQUIRED)
    assert balance(alice, "USDT") == (D("100000"), D(0))


def test_an_order_travels_to_another_engine_process_exactly(alice: Persona) -> None:
    """The Redis transport's copy of a submitted order: every field back as it was, decimals exact."""
    from apps.orders.services.engine.redis_transport import _carried_orders
    from apps.orders.services.engine.state import order_from_json, order_to_json

    order = place(alice, "buy", "0.123456789", price="100.25", tif="FOK")
    copy = placed(order)
    copy.fills.append(FillReport(D("100.25"), D("0.1"), D("0.010025"), "USDT", "taker", 7))
    wire = orjson.loads(orjson.dumps(order_to_json(copy)))

    assert order_from_json(wire) == copy
    fresh = {"op": "submit", "ids": [str(order.id)], "orders": [wire], "sent_ns": time.time_ns()}
    assert _carried_orders(fresh, [order.id]) == [copy]
    assert _carried_orders({**fresh, "sent_ns": time.time_ns() - 60 * 10**9}, [order.id]) == []  # waited: stale
    assert _carried_orders({**fresh, "orders": [{**wire, "quantity": 0.123}]}, [order.id]) == []  # a float
    assert _carried_orders({**fresh, "orders": [{**wire, "fees": "NaN"}]}, [order.id]) == []
    assert _carried_orders(fresh, []) == []  # only the orders the command names
