"""Engine invariants under random order flow (Hypothesis): balances move exactly by the fills, and nothing
stays locked once every order has ended.

Each example places random orders on the known book, lets random trades and book changes fill the resting
ones, cancels what is left, and then checks the books of the customer against the fills written.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.orderbook.domain.events import DELTA
from apps.orders.domain.types import TERMINAL
from apps.orders.models import Balance, Fill, Order
from apps.orders.tests.test_engine import Driver, known_book, place, publish_book, publish_trade
from conftest import make_persona

D = Decimal
GRANTS = {"USDT": "100000", "BTC": "50"}  # enough for any example's orders: every one gets placed
PRICES = ["97", "98.5", "99", "99.5", "100", "100.5", "101", "102"]

KINDS = [("market", "IOC", None)] + [("limit", tif, p) for tif in ("GTC", "IOC", "FOK", "POST_ONLY") for p in PRICES]
SIZES = st.sampled_from(["0", "0.7", "3"])
order_spec = st.tuples(
    st.sampled_from(["buy", "sell"]), st.sampled_from(["0.1", "0.5", "1", "2.5"]), st.sampled_from(KINDS)
)
event_spec = st.one_of(
    st.tuples(
        st.just("trade"), st.sampled_from(PRICES), st.sampled_from(["0.3", "1", "4"]), st.sampled_from(["buy", "sell"])
    ),
    st.tuples(st.just("bid"), st.sampled_from(PRICES), SIZES, st.just("")),
    st.tuples(st.just("ask"), st.sampled_from(PRICES), SIZES, st.just("")),
)


@pytest.mark.django_db
@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=st.lists(order_spec, min_size=1, max_size=8), events=st.lists(event_spec, max_size=8))
def test_balances_move_exactly_by_the_fills_and_nothing_stays_locked(
    settings: Any, orders: list[tuple[str, str, tuple[str, str, str | None]]], events: list[tuple[str, str, str, str]]
) -> None:
    from apps.orderbook.services.market import reset_market

    settings.HFT_PAPER_GRANTS = GRANTS
    settings.HFT_PAPER_START_GRACE_S = 0
    reset_market()
    known_book()
    driver = Driver()
    persona = make_persona(f"Prop {uuid.uuid4().hex[:12]}", "professional")  # examples share one transaction
    placed = []
    for side, qty, (kind, tif, price) in orders:
        order = place(persona, side, qty, price=price, tif=tif, kind=kind)
        placed.append(order)
        driver.submit(order)
    for kind, price, qty, aggressor in events:
        if kind == "trade":
            publish_trade(price, qty, aggressor)
        elif kind == "bid":
            publish_book([(price, qty)], [], kind=DELTA)
        else:
            publish_book([], [(price, qty)], kind=DELTA)
        driver.run()
    driver.cancel(*placed)

    statuses = set(Order.objects.filter(id__in=[o.id for o in placed]).values_list("status", flat=True))
    assert statuses <= {s.value for s in TERMINAL}
    usdt, btc = D(GRANTS["USDT"]), D(GRANTS["BTC"])
    for fill in Fill.objects.filter(customer=persona.customer).select_related("order"):
        notional = fill.price * fill.quantity
        if fill.order.side == "buy":
            usdt, btc = usdt - notional - fill.fee, btc + fill.quantity
        else:
            usdt, btc = usdt + notional - fill.fee, btc - fill.quantity
    rows = {b.currency: b for b in Balance.objects.filter(customer=persona.customer)}
    assert (rows["USDT"].available, rows["USDT"].locked) == (usdt, D(0))
    assert (rows["BTC"].available, rows["BTC"].locked) == (btc, D(0))
    for order in Order.objects.filter(id__in=[o.id for o in placed]):
        assert order.filled_quantity <= order.quantity
        assert order.filled_quantity == sum((f.quantity for f in order.fills.all()), D(0))
