"""Hypothesis properties of the paper engine: quantity conserved, prices within the walk and the limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.orders.domain.matching import MAKER, TAKER, RestingOrders, WorkingOrder, average_price, execute_incoming
from apps.orders.domain.states import next_status
from apps.orders.domain.types import OrderStatus, OrderType, Side, TimeInForce

CENT = Decimal("0.01")
MILLI = Decimal("0.001")

ticks = st.integers(min_value=1, max_value=500)
lots = st.integers(min_value=0, max_value=3000)  # zero-size levels happen in real feeds


@st.composite
def books(draw: st.DrawFn) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """A consistent book around 10.00: bids below, asks above, each side best first."""
    bid_ticks = draw(st.lists(ticks, unique=True, max_size=8))
    ask_ticks = draw(st.lists(ticks, unique=True, max_size=8))
    bids = [(Decimal(1000 - t) * CENT, Decimal(draw(lots)) * MILLI) for t in sorted(bid_ticks)]
    asks = [(Decimal(1000 + t) * CENT, Decimal(draw(lots)) * MILLI) for t in sorted(ask_ticks)]
    return bids, asks


@st.composite
def incoming(draw: st.DrawFn) -> WorkingOrder:
    side = draw(st.sampled_from(Side))
    kind = draw(st.sampled_from(OrderType))
    tifs = [TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]
    tif = draw(st.sampled_from(tifs if kind is OrderType.MARKET else [*tifs, TimeInForce.POST_ONLY]))
    has_price = kind is OrderType.LIMIT or draw(st.booleans())  # a market order may carry a protection cap
    price = Decimal(draw(st.integers(min_value=500, max_value=1500))) * CENT if has_price else None
    quantity = Decimal(draw(st.integers(min_value=1, max_value=10_000))) * MILLI
    return WorkingOrder("alice-1", side, kind, tif, price, quantity)


def _crosses(order: WorkingOrder, level_price: Decimal) -> bool:
    if order.price is None:
        return True
    return level_price <= order.price if order.side is Side.BUY else level_price >= order.price


@settings(max_examples=400, deadline=None)
@given(order=incoming(), book=books())
def test_incoming_order_fills_are_consistent_with_the_book(
    order: WorkingOrder, book: tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]
) -> None:
    bids, asks = book
    opposite = dict(asks if order.side is Side.BUY else bids)
    execution = execute_incoming(order, bids, asks)
    prices = [match.price for match in execution.matches]

    # Quantity is conserved: what matched is what the order records, never more than it asked for.
    assert execution.filled_quantity == order.filled <= order.quantity
    assert (execution.status is OrderStatus.FILLED) == (order.filled == order.quantity)
    # Every fill is a taker fill at a real level, no larger than it, at or better than the limit.
    assert all(match.liquidity == TAKER and match.quantity > 0 for match in execution.matches)
    assert len(set(prices)) == len(prices)
    assert all(match.price in opposite and match.quantity <= opposite[match.price] for match in execution.matches)
    assert all(_crosses(order, price) for price in prices)
    # Quality never improves as the walk proceeds: a buy's prices rise, a sell's fall.
    assert prices == sorted(prices, reverse=order.side is Side.SELL)
    if prices:
        average = average_price(execution.matches)
        assert average is not None
        assert min(prices) <= average <= max(prices)
    # Only the last level walked may be partly used.
    for match in execution.matches[:-1]:
        assert match.quantity == opposite[match.price]
    if order.time_in_force is TimeInForce.FOK:
        assert execution.filled_quantity in (0, order.quantity)
    if order.time_in_force is TimeInForce.POST_ONLY:
        assert execution.matches == ()
    if execution.rests:
        assert order.type is OrderType.LIMIT
        assert order.time_in_force in (TimeInForce.GTC, TimeInForce.POST_ONLY)
    # The outcome is reachable from PENDING through the state table.
    status = OrderStatus.PENDING
    for event in execution.events:
        status = next_status(status, event)
    assert status is execution.status


@settings(max_examples=300, deadline=None)
@given(order=incoming(), book=books())
def test_remaining_liquidity_is_taken_when_an_ioc_or_gtc_stops_short(
    order: WorkingOrder, book: tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]
) -> None:
    bids, asks = book
    execution = execute_incoming(order, bids, asks)
    crossing = sum((q for p, q in (asks if order.side is Side.BUY else bids) if _crosses(order, p)), Decimal(0))
    if order.time_in_force in (TimeInForce.GTC, TimeInForce.IOC):
        # Walking stopped only because the order was full or the crossing liquidity ran out.
        assert execution.filled_quantity == min(order.quantity, crossing)


events = st.one_of(
    st.tuples(
        st.just("trade"),
        st.integers(min_value=900, max_value=1100),
        st.integers(min_value=1, max_value=2000),
        st.sampled_from(Side),
    ),
    st.tuples(st.just("book"), books()),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=5)),
)


@settings(max_examples=200, deadline=None)
@given(
    orders=st.lists(
        st.tuples(st.sampled_from(Side), st.integers(min_value=950, max_value=1050), st.integers(1, 3000)),
        min_size=1,
        max_size=6,
    ),
    stream=st.lists(events, max_size=12),
)
def test_resting_orders_never_overfill_and_fill_only_at_their_price(
    orders: list[tuple[Side, int, int]], stream: list[Any]
) -> None:
    book = RestingOrders()
    working = [
        WorkingOrder(f"o{i}", side, OrderType.LIMIT, TimeInForce.GTC, Decimal(t) * CENT, Decimal(q) * MILLI)
        for i, (side, t, q) in enumerate(orders)
    ]
    for order in working:
        book.add(order)
    filled_by_fills = {order.order_id: Decimal(0) for order in working}
    canceled: set[object] = set()
    for item in stream:
        fills = []
        if item[0] == "cancel":
            target = working[item[1] % len(working)]
            assert (book.cancel(target.order_id) is target) == (
                target.order_id not in canceled and target.remaining > 0
            )
            canceled.add(target.order_id)
        elif item[0] == "trade":
            _, tick, size, aggressor = item
            price, qty = Decimal(tick) * CENT, Decimal(size) * MILLI
            fills = book.on_trade(price, qty, aggressor)
            assert sum((m.quantity for _, m in fills), Decimal(0)) <= qty
            for order, _ in fills:
                assert order.side is not aggressor
                assert price < order.price if order.side is Side.BUY else price > order.price
        else:
            bids, asks = item[1]
            fills = book.on_book(bids, asks)
            for order, match in fills:
                opposite = asks if order.side is Side.BUY else bids
                crossing = sum((q for p, q in opposite if _crosses(order, p)), Decimal(0))
                assert match.quantity <= crossing
        for order, match in fills:
            assert order.order_id not in canceled
            assert (match.liquidity, match.price) == (MAKER, order.price)
            assert match.quantity > 0
            filled_by_fills[order.order_id] += match.quantity
    for order in working:
        assert order.filled == filled_by_fills[order.order_id] <= order.quantity
        assert (order.order_id in book) == (order.filled < order.quantity and order.order_id not in canceled)
    still_open = {str(o.order_id) for o in working if o.order_id not in canceled and o.filled < o.quantity}
    assert sorted(str(o.order_id) for o in book.orders()) == sorted(still_open)


@settings(max_examples=400, deadline=None)
@given(order=incoming(), book=books(), earlier=st.lists(incoming(), max_size=3))
def test_a_taker_reading_only_the_levels_it_reaches_executes_as_on_the_whole_side(
    order: WorkingOrder,
    book: tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]],
    earlier: list[WorkingOrder],
) -> None:
    """The engine passes `UsedLiquidity.remaining(..., limit=, enough=)`, a prefix of the opposite side, and
    nothing of its own side: the execution must be the one the whole book, less earlier takers' use, gives."""
    from apps.orders.domain.liquidity import UsedLiquidity

    bids, asks = book
    used = UsedLiquidity()
    for taker in earlier:  # earlier takers on the same book leave some levels partly or wholly used
        shown_side = Side.SELL if taker.side is Side.BUY else Side.BUY
        shown = asks if taker.side is Side.BUY else bids
        before = (
            execute_incoming(taker, used.remaining(Side.BUY, bids), used.remaining(Side.SELL, asks))
            if taker.remaining > 0
            else None
        )
        if before is not None:
            used.take(shown_side, shown, before.matches)

    whole = WorkingOrder(order.order_id, order.side, order.type, order.time_in_force, order.price, order.quantity)
    expected = execute_incoming(whole, used.remaining(Side.BUY, bids), used.remaining(Side.SELL, asks))
    taker_side, shown = (Side.SELL, asks) if order.side is Side.BUY else (Side.BUY, bids)
    reached = used.remaining(taker_side, shown, limit=order.price, enough=order.quantity)
    got = execute_incoming(order, *(([], reached) if order.side is Side.BUY else (reached, [])))

    assert got == expected
    assert order.filled == whole.filled
