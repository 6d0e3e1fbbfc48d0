"""Resting paper orders as makers: filled by a later trade through their price, or by a crossing book."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.orders.domain.matching import MAKER, Match, RestingOrders, WorkingOrder, execute_incoming
from apps.orders.domain.types import OrderType, Side, TimeInForce

D = Decimal


def resting(order_id: str, side: Side, price: str, quantity: str = "1") -> WorkingOrder:
    return WorkingOrder(order_id, side, OrderType.LIMIT, TimeInForce.GTC, D(price), D(quantity))


def book_with(*orders: WorkingOrder) -> RestingOrders:
    book = RestingOrders()
    for working in orders:
        book.add(working)
    return book


def summary(fills: list[tuple[WorkingOrder, Match]]) -> list[tuple[object, Decimal, Decimal]]:
    assert all(match.liquidity == MAKER for _, match in fills)
    return [(o.order_id, match.price, match.quantity) for o, match in fills]


def rows(*expected: tuple[str, str, str]) -> list[tuple[object, Decimal, Decimal]]:
    return [(order_id, D(price), D(quantity)) for order_id, price, quantity in expected]


def test_sell_trade_through_a_resting_buy_fills_it_at_its_own_price() -> None:
    alice = resting("alice", Side.BUY, "100", "1")
    book = book_with(alice)
    fills = book.on_trade(D("99.5"), D("0.3"), aggressor=Side.SELL)
    assert summary(fills) == rows(("alice", "100", "0.3"))
    assert alice.filled == D("0.3")
    assert "alice" in book


def test_trade_at_the_resting_price_does_not_fill() -> None:
    alice = resting("alice", Side.BUY, "100")
    book = book_with(alice)
    assert book.on_trade(D("100"), D("5"), aggressor=Side.SELL) == []
    assert alice.filled == 0


def test_trade_above_a_resting_buy_does_not_fill() -> None:
    book = book_with(resting("alice", Side.BUY, "100"))
    assert book.on_trade(D("100.01"), D("5"), aggressor=Side.SELL) == []


def test_buy_aggressor_trade_below_a_resting_buy_is_left_to_the_book_rule() -> None:
    book = book_with(resting("alice", Side.BUY, "100"))
    assert book.on_trade(D("99"), D("5"), aggressor=Side.BUY) == []


def test_buy_trade_through_a_resting_sell_fills_it() -> None:
    bob = resting("bob", Side.SELL, "105", "2")
    book = book_with(bob)
    fills = book.on_trade(D("105.5"), D("3"), aggressor=Side.BUY)
    assert summary(fills) == rows(("bob", "105", "2"))
    assert "bob" not in book
    assert len(book) == 0


def test_trade_quantity_is_shared_in_price_time_priority() -> None:
    alice = resting("alice", Side.BUY, "100")
    bob = resting("bob", Side.BUY, "101")
    carol = resting("carol", Side.BUY, "100")
    book = book_with(alice, bob, carol)
    fills = book.on_trade(D("99"), D("2.5"), aggressor=Side.SELL)
    assert summary(fills) == rows(("bob", "101", "1"), ("alice", "100", "1"), ("carol", "100", "0.5"))
    assert book.orders() == (carol,)


def test_fill_never_exceeds_the_remaining_quantity() -> None:
    alice = resting("alice", Side.BUY, "100", "1")
    alice.filled = D("0.75")
    book = book_with(alice)
    fills = book.on_trade(D("90"), D("10"), aggressor=Side.SELL)
    assert summary(fills) == rows(("alice", "100", "0.25"))
    assert alice.filled == alice.quantity
    assert book.on_trade(D("90"), D("10"), aggressor=Side.SELL) == []


def test_book_crossing_a_resting_buy_fills_it_from_the_crossing_levels() -> None:
    alice = resting("alice", Side.BUY, "100", "2")
    book = book_with(alice)
    asks = [(D("99.5"), D("0.5")), (D("100"), D("1")), (D("100.5"), D("5"))]
    fills = book.on_book([(D("99"), D("1"))], asks)
    assert summary(fills) == rows(("alice", "100", "1.5"))


def test_ask_exactly_at_the_resting_buy_price_fills_it() -> None:
    alice = resting("alice", Side.BUY, "100", "2")
    book = book_with(alice)
    assert summary(book.on_book([], [(D("100"), D("0.5"))])) == rows(("alice", "100", "0.5"))


def test_book_crossing_a_resting_sell_fills_it() -> None:
    bob = resting("bob", Side.SELL, "105", "1")
    book = book_with(bob)
    fills = book.on_book([(D("106"), D("0.4")), (D("105"), D("2"))], [(D("107"), D("1"))])
    assert summary(fills) == rows(("bob", "105", "1"))
    assert len(book) == 0


def test_the_same_crossing_liquidity_fills_only_once() -> None:
    alice = resting("alice", Side.BUY, "100", "2")
    book = book_with(alice)
    asks = [(D("100"), D("1"))]
    assert summary(book.on_book([], asks)) == rows(("alice", "100", "1"))
    assert book.on_book([], asks) == []
    assert summary(book.on_book([], [(D("100"), D("1.25"))])) == rows(("alice", "100", "0.25"))


def test_liquidity_that_left_and_came_back_is_new() -> None:
    alice = resting("alice", Side.BUY, "100", "3")
    book = book_with(alice)
    book.on_book([], [(D("100"), D("1"))])
    book.on_book([], [(D("101"), D("1"))])  # the level at 100 is gone
    assert summary(book.on_book([], [(D("100"), D("1"))])) == rows(("alice", "100", "1"))


def test_shrunk_level_caps_what_was_used() -> None:
    alice = resting("alice", Side.BUY, "100", "5")
    book = book_with(alice)
    book.on_book([], [(D("100"), D("2"))])  # used 2
    assert book.on_book([], [(D("100"), D("1"))]) == []  # used capped at 1
    assert summary(book.on_book([], [(D("100"), D("1.5"))])) == rows(("alice", "100", "0.5"))


def test_crossing_liquidity_is_shared_in_priority_order() -> None:
    alice = resting("alice", Side.BUY, "100", "1")
    bob = resting("bob", Side.BUY, "100.5", "1")
    book = book_with(alice, bob)
    fills = book.on_book([], [(D("100"), D("1.5")), (D("100.5"), D("1"))])
    # bob (better price) takes 1 at 100; alice gets the 0.5 left at 100; 100.5 does not cross her.
    assert summary(fills) == rows(("bob", "100.5", "1"), ("alice", "100", "0.5"))


def test_gtc_remainder_is_not_refilled_by_the_liquidity_it_took() -> None:
    alice = WorkingOrder("alice", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, D("100"), D("3"))
    asks = [(D("100"), D("1"))]
    execution = execute_incoming(alice, [], asks)
    book = RestingOrders()
    book.add(alice, taken=execution.matches)
    assert book.on_book([], asks) == []
    assert summary(book.on_book([], [(D("100"), D("1.5"))])) == rows(("alice", "100", "0.5"))


def test_without_taken_the_same_liquidity_would_fill_again() -> None:
    alice = WorkingOrder("alice", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, D("100"), D("3"))
    asks = [(D("100"), D("1"))]
    execute_incoming(alice, [], asks)
    book = book_with(alice)
    assert summary(book.on_book([], asks)) == rows(("alice", "100", "1"))


def test_canceled_order_no_longer_fills() -> None:
    alice = resting("alice", Side.BUY, "100")
    book = book_with(alice)
    assert book.cancel("alice") is alice
    assert book.cancel("alice") is None
    assert book.on_trade(D("90"), D("1"), aggressor=Side.SELL) == []
    assert book.get("alice") is None


def test_only_priced_limit_orders_with_quantity_left_can_rest() -> None:
    book = book_with(resting("alice", Side.BUY, "100"))
    with pytest.raises(ValueError, match="already rests"):
        book.add(resting("alice", Side.BUY, "100"))
    market = WorkingOrder("bob", Side.BUY, OrderType.MARKET, TimeInForce.IOC, None, D("1"))
    with pytest.raises(ValueError, match="only limit"):
        book.add(market)
    done = resting("carol", Side.BUY, "100")
    done.filled = D("1")
    with pytest.raises(ValueError, match="nothing left"):
        book.add(done)


def test_canceling_from_the_middle_of_a_price_level_keeps_the_others_queue() -> None:
    alice, bob, carol = (resting(name, Side.SELL, "105") for name in ("alice", "bob", "carol"))
    book = book_with(alice, bob, carol)
    assert book.cancel("bob") is bob
    fills = book.on_trade(D("106"), D("1.5"), aggressor=Side.BUY)
    assert summary(fills) == rows(("alice", "105", "1"), ("carol", "105", "0.5"))
    assert book.orders() == (carol,)
