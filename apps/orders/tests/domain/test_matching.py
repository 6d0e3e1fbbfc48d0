"""Incoming paper orders against a known book: walks, partial fills, IOC remainder, FOK, post-only, GTC."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.orders.domain.matching import (
    MAKER,
    TAKER,
    Execution,
    Match,
    WorkingOrder,
    average_price,
    execute_incoming,
)
from apps.orders.domain.states import Event, next_status
from apps.orders.domain.types import OrderStatus, OrderType, Reason, Side, TimeInForce

D = Decimal
ASKS = [(D("100"), D("1")), (D("101"), D("2")), (D("102"), D("3"))]
BIDS = [(D("99"), D("1")), (D("98"), D("2")), (D("97"), D("3"))]


def order(
    side: Side = Side.BUY,
    quantity: str = "1",
    price: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    type_: OrderType | None = None,
) -> WorkingOrder:
    kind = type_ or (OrderType.MARKET if price is None else OrderType.LIMIT)
    return WorkingOrder("alice-1", side, kind, tif, None if price is None else D(price), D(quantity))


def taker(price: str, quantity: str) -> Match:
    return Match(D(price), D(quantity), TAKER)


def reached_from_pending(execution: Execution) -> OrderStatus:
    status = OrderStatus.PENDING
    for event in execution.events:
        status = next_status(status, event)
    return status


def test_market_buy_walks_the_asks_level_by_level() -> None:
    alice = order(quantity="2.5", tif=TimeInForce.IOC)
    execution = execute_incoming(alice, BIDS, ASKS)
    assert execution.matches == (taker("100", "1"), taker("101", "1.5"))
    assert (execution.status, execution.reason, execution.rests) == (OrderStatus.FILLED, None, False)
    assert alice.filled == D("2.5")
    assert average_price(execution.matches) == D("100.6")
    assert reached_from_pending(execution) is OrderStatus.FILLED


def test_market_sell_walks_the_bids_down() -> None:
    execution = execute_incoming(order(Side.SELL, quantity="2"), BIDS, ASKS)
    assert execution.matches == (taker("99", "1"), taker("98", "1"))
    assert execution.status is OrderStatus.FILLED


def test_market_order_larger_than_the_book_expires_the_remainder() -> None:
    alice = order(quantity="10", tif=TimeInForce.IOC)
    execution = execute_incoming(alice, BIDS, ASKS)
    assert execution.filled_quantity == D("6")
    assert (execution.status, execution.reason) == (OrderStatus.EXPIRED, Reason.IOC_REMAINDER)
    assert alice.filled == D("6")
    assert execution.events == (Event.PARTIAL_FILL, Event.EXPIRE)
    assert reached_from_pending(execution) is OrderStatus.EXPIRED


def test_market_order_marked_gtc_never_rests() -> None:
    execution = execute_incoming(order(quantity="10", tif=TimeInForce.GTC), BIDS, ASKS)
    assert (execution.status, execution.rests) == (OrderStatus.EXPIRED, False)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_market_order_on_an_empty_side_is_rejected_no_market(side: Side) -> None:
    alice = order(side, quantity="1")
    bids, asks = ([], ASKS) if side is Side.SELL else (BIDS, [])
    execution = execute_incoming(alice, bids, asks)
    assert (execution.status, execution.reason, execution.matches) == (OrderStatus.REJECTED, Reason.NO_MARKET, ())
    assert alice.filled == 0
    assert reached_from_pending(execution) is OrderStatus.REJECTED


def test_market_order_against_only_empty_levels_is_rejected_no_market() -> None:
    execution = execute_incoming(order(), BIDS, [(D("100"), D("0"))])
    assert execution.reason is Reason.NO_MARKET


def test_market_order_stops_at_its_protection_price() -> None:
    capped = order(quantity="5", tif=TimeInForce.IOC, type_=OrderType.MARKET)
    capped.price = D("101")
    execution = execute_incoming(capped, BIDS, ASKS)
    assert execution.matches == (taker("100", "1"), taker("101", "2"))
    assert (execution.status, execution.reason) == (OrderStatus.EXPIRED, Reason.IOC_REMAINDER)


def test_ioc_limit_fills_what_crosses_and_expires_the_rest() -> None:
    execution = execute_incoming(order(quantity="5", price="101", tif=TimeInForce.IOC), BIDS, ASKS)
    assert execution.matches == (taker("100", "1"), taker("101", "2"))
    assert (execution.status, execution.reason, execution.rests) == (
        OrderStatus.EXPIRED,
        Reason.IOC_REMAINDER,
        False,
    )


def test_ioc_limit_that_crosses_nothing_expires_unfilled() -> None:
    execution = execute_incoming(order(price="99.5", tif=TimeInForce.IOC), BIDS, ASKS)
    assert (execution.status, execution.reason, execution.matches) == (OrderStatus.EXPIRED, Reason.IOC_REMAINDER, ())
    assert execution.events == (Event.EXPIRE,)


def test_fok_fills_whole_when_enough_is_available_within_its_limit() -> None:
    execution = execute_incoming(order(quantity="3", price="101", tif=TimeInForce.FOK), BIDS, ASKS)
    assert execution.matches == (taker("100", "1"), taker("101", "2"))
    assert execution.status is OrderStatus.FILLED


def test_fok_that_cannot_fill_whole_expires_with_no_fill() -> None:
    alice = order(quantity="3.5", price="101", tif=TimeInForce.FOK)
    execution = execute_incoming(alice, BIDS, ASKS)
    assert (execution.status, execution.reason, execution.matches) == (
        OrderStatus.EXPIRED,
        Reason.FOK_NOT_FILLABLE,
        (),
    )
    assert alice.filled == 0


def test_market_fok_larger_than_the_book_expires_with_no_fill() -> None:
    execution = execute_incoming(order(quantity="7", tif=TimeInForce.FOK), BIDS, ASKS)
    assert (execution.status, execution.reason, execution.matches) == (
        OrderStatus.EXPIRED,
        Reason.FOK_NOT_FILLABLE,
        (),
    )


@pytest.mark.parametrize(("side", "price"), [(Side.BUY, "100"), (Side.BUY, "150"), (Side.SELL, "99")])
def test_post_only_that_would_take_is_rejected(side: Side, price: str) -> None:
    alice = order(side, price=price, tif=TimeInForce.POST_ONLY)
    execution = execute_incoming(alice, BIDS, ASKS)
    assert (execution.status, execution.reason, execution.matches) == (
        OrderStatus.REJECTED,
        Reason.POST_ONLY_WOULD_TAKE,
        (),
    )
    assert alice.filled == 0


@pytest.mark.parametrize(("side", "price"), [(Side.BUY, "99.99"), (Side.SELL, "99.01")])
def test_post_only_that_does_not_cross_rests(side: Side, price: str) -> None:
    execution = execute_incoming(order(side, price=price, tif=TimeInForce.POST_ONLY), BIDS, ASKS)
    assert (execution.status, execution.rests, execution.matches) == (OrderStatus.NEW, True, ())
    assert execution.events == (Event.ACCEPT,)


def test_market_post_only_is_rejected() -> None:
    execution = execute_incoming(order(tif=TimeInForce.POST_ONLY), BIDS, ASKS)
    assert (execution.status, execution.reason) == (OrderStatus.REJECTED, Reason.INVALID_TIME_IN_FORCE)


def test_gtc_takes_what_crosses_then_rests_the_rest() -> None:
    alice = order(quantity="2", price="100.5")
    execution = execute_incoming(alice, BIDS, ASKS)
    assert execution.matches == (taker("100", "1"),)
    assert (execution.status, execution.rests) == (OrderStatus.PARTIALLY_FILLED, True)
    assert alice.remaining == D("1")
    assert reached_from_pending(execution) is OrderStatus.PARTIALLY_FILLED


def test_gtc_that_crosses_nothing_rests_new() -> None:
    execution = execute_incoming(order(price="99.5"), BIDS, ASKS)
    assert (execution.status, execution.rests, execution.matches) == (OrderStatus.NEW, True, ())


def test_gtc_filled_on_arrival_does_not_rest() -> None:
    execution = execute_incoming(order(quantity="1", price="100"), BIDS, ASKS)
    assert (execution.status, execution.rests) == (OrderStatus.FILLED, False)


def test_walk_skips_empty_levels() -> None:
    asks = [(D("100"), D("0")), (D("101"), D("1"))]
    execution = execute_incoming(order(quantity="1", price="101"), BIDS, asks)
    assert execution.matches == (taker("101", "1"),)


def test_order_partly_filled_before_executes_only_its_remainder() -> None:
    alice = order(quantity="3", price="102")
    alice.filled = D("2")
    execution = execute_incoming(alice, BIDS, ASKS)
    assert execution.matches == (taker("100", "1"),)
    assert (alice.filled, execution.status) == (D("3"), OrderStatus.FILLED)


def test_order_with_nothing_left_cannot_execute() -> None:
    alice = order(quantity="1", price="100")
    alice.filled = D("1")
    with pytest.raises(ValueError, match="nothing left"):
        execute_incoming(alice, BIDS, ASKS)


def test_limit_order_without_price_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no price"):
        execute_incoming(order(type_=OrderType.LIMIT), BIDS, ASKS)


def test_average_price_of_no_fill_is_none() -> None:
    assert average_price([]) is None
    assert average_price([Match(D("10"), D("1"), MAKER), Match(D("20"), D("3"), MAKER)]) == D("17.5")
