"""The paper matching engine: an incoming order against a venue's book, and resting orders as makers.

Paper orders never change the real book: an incoming order walks a copy of the levels it is given.
Resting orders fill at their own price when a later trade prints strictly through it, or when the book
crosses it; liquidity a paper order already used is remembered so the same level is not counted twice.
Rules and their reasons: docs/paper-engine.md.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .fees import fee_for
from .states import Event
from .types import OrderStatus, OrderType, Reason, Side, TimeInForce

__all__ = [
    "MAKER",
    "TAKER",
    "Execution",
    "Levels",
    "Match",
    "RestingOrders",
    "WorkingOrder",
    "average_price",
    "execute_incoming",
    "fee_for",
]

Levels = Sequence[tuple[Decimal, Decimal]]  # (price, quantity), best first
MAKER = "maker"
TAKER = "taker"
ZERO = Decimal(0)


@dataclass(slots=True)
class WorkingOrder:
    """The engine's working copy of an order. `execute_incoming` and `RestingOrders` advance `filled`.

    A market order's `price`, when set, is its protection cap (validation.protection_price): the walk stops
    there. None walks the whole side.
    """

    order_id: Hashable
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: Decimal | None
    quantity: Decimal
    filled: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class Match:
    price: Decimal
    quantity: Decimal
    liquidity: str  # MAKER or TAKER


@dataclass(frozen=True, slots=True)
class Execution:
    matches: tuple[Match, ...]
    status: OrderStatus
    reason: Reason | None
    rests: bool  # the remainder now rests on the paper book (add it to RestingOrders)

    @property
    def filled_quantity(self) -> Decimal:
        return sum((match.quantity for match in self.matches), ZERO)

    @property
    def events(self) -> tuple[Event, ...]:
        """The state-machine events, applied in order, that take the PENDING order to `status`."""
        if self.status is OrderStatus.FILLED:
            return (Event.FILL,)
        filled = (Event.PARTIAL_FILL,) if self.matches else ()
        if self.status is OrderStatus.NEW:
            return (Event.ACCEPT,)
        if self.status is OrderStatus.EXPIRED:
            return (*filled, Event.EXPIRE)
        if self.status is OrderStatus.REJECTED:
            return (Event.REJECT,)
        return filled  # PARTIALLY_FILLED, resting


def average_price(matches: Sequence[Match]) -> Decimal | None:
    """Quantity-weighted average price of `matches`, None when there are none."""
    quantity = sum((match.quantity for match in matches), ZERO)
    if quantity == 0:
        return None
    return sum((match.price * match.quantity for match in matches), ZERO) / quantity


def _crosses(side: Side, limit: Decimal | None, level_price: Decimal) -> bool:
    """Whether a level on the other side is at or better than `limit` (no limit: every level)."""
    if limit is None:
        return True
    return level_price <= limit if side is Side.BUY else level_price >= limit


def _crossing_levels(
    side: Side, limit: Decimal | None, opposite: Levels, enough: Decimal | None = None
) -> list[tuple[Decimal, Decimal]]:
    """The non-empty levels at or better than `limit`, best first; stops once they hold `enough`."""
    crossing: list[tuple[Decimal, Decimal]] = []
    total = ZERO
    for price, quantity in opposite:
        if not _crosses(side, limit, price):
            break  # levels are best first: none after this one crosses either
        if quantity > 0:
            crossing.append((price, quantity))
            total += quantity
            if enough is not None and total >= enough:
                break
    return crossing


def _outcome(matches: tuple[Match, ...], status: OrderStatus, reason: Reason | None = None) -> Execution:
    return Execution(matches=matches, status=status, reason=reason, rests=False)


def _rest(order: WorkingOrder, matches: tuple[Match, ...]) -> Execution:
    status = OrderStatus.PARTIALLY_FILLED if order.filled > 0 else OrderStatus.NEW
    return Execution(matches=matches, status=status, reason=None, rests=True)


def execute_incoming(order: WorkingOrder, bids: Levels, asks: Levels) -> Execution:
    """Execute a newly submitted order against the book; `order.filled` is advanced by what it takes.

    Market orders and IOC take what they can and expire the rest (EXPIRED, ioc_remainder, even when some
    filled); FOK fills whole or expires untouched; post-only is rejected if it would take; GTC takes what
    crosses and rests the rest.
    """
    if order.remaining <= 0:
        raise ValueError(f"order {order.order_id!r} has nothing left to execute")
    is_market = order.type is OrderType.MARKET
    if not is_market and order.price is None:
        raise ValueError(f"limit order {order.order_id!r} has no price")
    if is_market and order.time_in_force is TimeInForce.POST_ONLY:
        return _outcome((), OrderStatus.REJECTED, Reason.INVALID_TIME_IN_FORCE)
    opposite = asks if order.side is Side.BUY else bids
    crossing = _crossing_levels(order.side, order.price, opposite, enough=order.remaining)
    if order.time_in_force is TimeInForce.POST_ONLY:
        if crossing:
            return _outcome((), OrderStatus.REJECTED, Reason.POST_ONLY_WOULD_TAKE)
        return _rest(order, ())
    if is_market and not any(quantity > 0 for _, quantity in opposite):
        return _outcome((), OrderStatus.REJECTED, Reason.NO_MARKET)
    if order.time_in_force is TimeInForce.FOK and sum((q for _, q in crossing), ZERO) < order.remaining:
        return _outcome((), OrderStatus.EXPIRED, Reason.FOK_NOT_FILLABLE)
    matches = tuple(_walk(crossing, order.remaining))
    order.filled += sum((match.quantity for match in matches), ZERO)
    if order.remaining == 0:
        return _outcome(matches, OrderStatus.FILLED)
    if is_market or order.time_in_force is TimeInForce.IOC:
        return _outcome(matches, OrderStatus.EXPIRED, Reason.IOC_REMAINDER)
    return _rest(order, matches)


def _walk(crossing: Sequence[tuple[Decimal, Decimal]], quantity: Decimal) -> list[Match]:
    matches: list[Match] = []
    left = quantity
    for price, available in crossing:
        if left == 0:
            break
        take = min(available, left)
        matches.append(Match(price=price, quantity=take, liquidity=TAKER))
        left -= take
    return matches


class RestingOrders:
    """The resting (maker) paper orders of one (venue, symbol), in price-time priority.

    Fills advance each order's `filled` in place; a filled order leaves the book. Fill price is always
    the resting order's own price: the price improvement of a trade through it went to the aggressor.
    Each side is kept sorted by priority, so a book update or a trade only looks at the orders it reaches.
    """

    def __init__(self) -> None:
        self._orders: dict[Hashable, WorkingOrder] = {}
        # Per side, sorted best first: (price key, arrival seq, order id); the key is -price for buys.
        self._queues: dict[Side, list[tuple[Decimal, int, Hashable]]] = {Side.BUY: [], Side.SELL: []}
        self._seqs: dict[Hashable, int] = {}
        self._next_seq = 0
        # Per side of the real book: price -> quantity of that level our paper fills already used.
        self._used: dict[Side, dict[Decimal, Decimal]] = {Side.BUY: {}, Side.SELL: {}}

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: Hashable) -> WorkingOrder | None:
        return self._orders.get(order_id)

    def add(self, order: WorkingOrder, *, taken: Sequence[Match] = ()) -> None:
        """Rest `order` (a limit order with quantity left). Pass `taken`, the matches its own execution
        took, so the levels it used (still in the real book) do not fill it a second time."""
        if order.type is not OrderType.LIMIT or order.price is None:
            raise ValueError("only limit orders with a price rest")
        if order.remaining <= 0:
            raise ValueError(f"order {order.order_id!r} has nothing left to rest")
        if order.order_id in self._orders:
            raise ValueError(f"order {order.order_id!r} already rests")
        self._orders[order.order_id] = order
        self._seqs[order.order_id] = self._next_seq
        insort(self._queues[order.side], (_key(order), self._next_seq, order.order_id))
        self._next_seq += 1
        used = self._used[_other(order.side)]
        for match in taken:
            used[match.price] = used.get(match.price, ZERO) + match.quantity

    def cancel(self, order_id: Hashable) -> WorkingOrder | None:
        order = self._orders.pop(order_id, None)
        if order is not None:
            queue = self._queues[order.side]
            del queue[bisect_left(queue, (_key(order), self._seqs.pop(order_id)))]
        return order

    def orders(self) -> tuple[WorkingOrder, ...]:
        """Every resting order, buys then sells, each side in priority order."""
        return tuple(self._orders[entry[2]] for side in Side for entry in self._queues[side])

    def on_trade(self, price: Decimal, qty: Decimal, aggressor: Side) -> list[tuple[WorkingOrder, Match]]:
        """A trade printed on the venue. It fills resting orders of the side it hit whose price it went
        strictly through (a sell at 99 fills resting buys above 99), up to the trade's quantity in all."""
        side = _other(aggressor)
        fills: list[tuple[WorkingOrder, Match]] = []
        left = qty
        for order in self._reached(side, lambda limit: _is_strictly_better(side, limit, price)):
            if left <= 0:
                break
            take = min(order.remaining, left)
            left -= take
            fills.append(self._fill(order, take))
        return fills

    def on_book(self, bids: Levels, asks: Levels) -> list[tuple[WorkingOrder, Match]]:
        """The venue's book changed. A resting order the other side now crosses (a buy at or above the
        best ask) fills against the crossing levels' quantity not yet used by earlier paper fills."""
        self._forget_gone(Side.BUY, bids)
        self._forget_gone(Side.SELL, asks)
        return self._fill_crossed(Side.BUY, asks) + self._fill_crossed(Side.SELL, bids)

    def _forget_gone(self, book_side: Side, levels: Levels) -> None:
        # A level that shrank lost (at least) the quantity we had used; one that vanished took it along.
        used = self._used[book_side]
        if not used:
            return
        present = dict(levels)
        self._used[book_side] = {p: min(q, present[p]) for p, q in used.items() if present.get(p, ZERO) > 0}

    def _fill_crossed(self, side: Side, opposite: Levels) -> list[tuple[WorkingOrder, Match]]:
        best = next((price for price, quantity in opposite if quantity > 0), None)
        if best is None:
            return []
        used = self._used[_other(side)]
        fills: list[tuple[WorkingOrder, Match]] = []
        for order in self._reached(side, lambda limit: _crosses(side, limit, best)):
            take = ZERO
            for price, quantity in _crossing_levels(side, order.price, opposite):
                step = min(quantity - used.get(price, ZERO), order.remaining - take)
                if step <= 0:
                    continue
                used[price] = used.get(price, ZERO) + step
                take += step
            if take > 0:
                fills.append(self._fill(order, take))
        return fills

    def _reached(self, side: Side, reaches: Callable[[Decimal], bool]) -> list[WorkingOrder]:
        """The orders of `side`, best first, up to the first whose price `reaches` refuses (a copy, so
        fills may take orders off the queue while the caller walks it)."""
        reached: list[WorkingOrder] = []
        for _, _, order_id in self._queues[side]:
            order = self._orders[order_id]
            if not reaches(_price(order)):
                break
            reached.append(order)
        return reached

    def _fill(self, order: WorkingOrder, quantity: Decimal) -> tuple[WorkingOrder, Match]:
        order.filled += quantity
        if order.remaining == 0:
            self.cancel(order.order_id)
        return order, Match(price=_price(order), quantity=quantity, liquidity=MAKER)


def _key(order: WorkingOrder) -> Decimal:
    """Sort key putting the best price first: the highest bid, the lowest ask."""
    return -_price(order) if order.side is Side.BUY else _price(order)


def _other(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def _price(order: WorkingOrder) -> Decimal:
    assert order.price is not None  # only priced limit orders rest (checked by add)
    return order.price


def _is_strictly_better(side: Side, limit: Decimal, trade_price: Decimal) -> bool:
    """Whether a trade at `trade_price` went strictly through a resting `side` order at `limit`."""
    return trade_price < limit if side is Side.BUY else trade_price > limit
