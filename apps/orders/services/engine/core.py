"""The engine's in-memory half: executes submitted orders on a book view, keeps resting orders per book,
fills them on trades and crossing books, and collects every change into the batch that the next flush writes.

Single-threaded by design: only the engine's own thread calls it (runtime.py), so it needs no locks.
Every status change goes through the state machine's table (`states.next_status`): an event the table
refuses (a fill for a canceled order, a cancel of a filled one, a second execution) is logged with the
order's id and leaves the order as it was; the command's report then says what the order is.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal, localcontext
from types import MappingProxyType
from typing import Any, Protocol
from uuid import UUID

from apps.orderbook.domain.events import Trade
from apps.orderbook.services.hub import BookView
from apps.orders.domain.fees import BPS, fee_for
from apps.orders.domain.liquidity import UsedLiquidity
from apps.orders.domain.matching import Execution, Levels, Match, RestingOrders, WorkingOrder, execute_incoming
from apps.orders.domain.states import Event, IllegalTransition, fill_event, next_status
from apps.orders.domain.types import TERMINAL, OrderStatus, OrderType, Reason, Side, TimeInForce
from apps.orders.domain.validation import InstrumentRules, protection_price
from apps.orders.services.engine.reports import FillReport
from apps.orders.services.engine.state import ZERO, Batch, EngineOrder

logger = logging.getLogger(__name__)
TAKER_ONLY = frozenset({TimeInForce.IOC, TimeInForce.FOK})
RECENT_KEEP = 100_000  # finished orders remembered, so a re-sent command is answered without the database
# A live venue's answer as the event that takes the order there (the same status and no new fill: none).
VENUE_EVENTS: Mapping[OrderStatus, Event] = MappingProxyType(
    {
        OrderStatus.NEW: Event.ACCEPT,
        OrderStatus.PARTIALLY_FILLED: Event.PARTIAL_FILL,
        OrderStatus.FILLED: Event.FILL,
        OrderStatus.CANCELED: Event.CANCEL,
        OrderStatus.EXPIRED: Event.EXPIRE,
        OrderStatus.REJECTED: Event.REJECT,
        OrderStatus.UNKNOWN: Event.TIMEOUT,
    }
)


class Market(Protocol):
    def view(self, book: str, depth: int | None) -> BookView | None: ...


Fees = Callable[[int], tuple[Decimal, Decimal]]  # tier id -> (maker bps, taker bps)
Exponents = Callable[[str, str], tuple[int, int] | None]  # (venue, symbol) -> (price exp, size exp)
Rules = Callable[[str], InstrumentRules | None]


def to_levels(levels: Iterable[tuple[int, int]], price_exp: int, size_exp: int) -> Levels:
    return [(Decimal(price).scaleb(-price_exp), Decimal(qty).scaleb(-size_exp)) for price, qty in levels]


class PaperEngine:
    def __init__(
        self,
        market: Market,
        fees: Fees,
        exponents: Exponents,
        rules: Rules,
        clock_ns: Callable[[], int],
        *,
        book_venue: str = "consolidated",
        depth: int | None = 200,
    ) -> None:
        self.market = market
        self.fees = fees
        self.exponents = exponents
        self.rules = rules
        self.clock_ns = clock_ns
        self.book_venue = book_venue
        self.depth = depth
        self.open: dict[UUID, EngineOrder] = {}  # every order this engine works: resting, or at a live venue
        self.books: dict[str, RestingOrders] = {}
        self.used: dict[str, UsedLiquidity] = {}  # per book: what paper takers took from the venue's levels
        self.watched: frozenset[str] = frozenset()  # books with resting orders; read by the hub's thread
        self.recent: OrderedDict[UUID, EngineOrder] = OrderedDict()
        self.batch = Batch()
        # Per book: its levels as Decimal, with the (seq, publish time) of the view they came from.
        self._converted: dict[str, tuple[tuple[int, int], Levels, Levels]] = {}

    # --- commands ---------------------------------------------------------------------------------------
    def known(self, order_id: UUID) -> EngineOrder | None:
        return self.open.get(order_id) or self.recent.get(order_id)

    def submit(self, order: EngineOrder) -> None:
        """Execute a PENDING paper order once.

        Executing starts with `accept` (or `reject`), which the table allows only from PENDING: an order
        already executed, in memory or as loaded, is refused (a re-sent submit) and reported as it is.
        """
        order = self.known(order.id) or order
        if not self.allows(order, Event.ACCEPT):
            return
        book = self.book_of(order)
        has_market, bids, asks = self._levels(book)
        if not has_market and (order.type == OrderType.MARKET or order.time_in_force in TAKER_ONLY):
            self.finish(order, Event.REJECT, Reason.NO_MARKET)
            return
        working = self._working(order, bids, asks)
        used = self.used.setdefault(book, UsedLiquidity())
        # A buy reads only the asks, a sell only the bids, and only as far as its price and quantity reach.
        taker_side, shown = (Side.SELL, asks) if order.side == Side.BUY else (Side.BUY, bids)
        left = used.remaining(taker_side, shown, limit=working.price, enough=working.remaining)
        try:
            if order.side == Side.BUY:
                execution = execute_incoming(working, [], left)
            else:
                execution = execute_incoming(working, left, [])
        except ValueError:
            # Validation lets neither through; were one stored anyway it must end, not fail every reload.
            bad = (
                Reason.PRICE_REQUIRED
                if order.type == OrderType.LIMIT and order.price is None
                else Reason.INVALID_QUANTITY
            )
            self.finish(order, Event.REJECT, bad)
            return
        status = self._next(order, execution_events(execution))
        if status is None:
            return
        self._apply(order, execution.matches)
        used.take(taker_side, shown, execution.matches)  # the next taker on this book finds them used
        order.status = status
        order.reason = execution.reason.value if execution.reason is not None else ""
        if execution.rests:
            self._rest(order, working, book, execution.matches)
            self.batch.touch(order)
        else:
            self._close(order, execution.reason)

    def rest(self, order: EngineOrder) -> None:
        """Re-rest an open paper order reloaded from the database (it executed before: never again)."""
        if self.known(order.id) is None:
            self._rest(order, self._working(order, [], []), self.book_of(order))

    def track(self, order: EngineOrder) -> None:
        """Keep an order worked elsewhere (a live venue) among the open ones, for cancels and outcomes."""
        self.open[order.id] = order

    def forget(self, order: EngineOrder) -> None:
        """Hold the order no more: a later command reads it from the database (an UNKNOWN live order, whose
        single writer is the reconciler until the venue's answer is in)."""
        self.open.pop(order.id, None)
        self.recent.pop(order.id, None)

    def cancel(self, order: EngineOrder, reason: Reason) -> bool:
        """Cancel a paper order: resting, or PENDING and never executed (its submit was lost or is queued
        behind this cancel). A finished one is refused by the table and stays as it is."""
        return self.finish(order, Event.CANCEL, reason)

    def finish(self, order: EngineOrder, event: Event, reason: Reason | str | None) -> bool:
        """End an order with `event` (cancel, expire, reject) if the table allows it."""
        status = self._next(order, (event,))
        if status is None:
            return False
        order.status = status
        self._close(order, reason)
        return True

    def allows(self, order: EngineOrder, event: Event) -> bool:
        """Whether the table allows `event` in the order's status now; a refusal is logged."""
        return self._next(order, (event,)) is not None

    def fill(self, order_id: UUID, match: Match, trade_id: str = "") -> bool:
        """A resting order's fill, if the table allows it; a refused one (the order no longer works: a stale
        match) is not applied, and the order leaves the paper book."""
        order = self.known(order_id)
        if order is None:
            return False
        try:
            event = fill_event(order.quantity, order.filled + match.quantity)
        except ValueError:
            logger.warning("paper engine: order %s: a fill of %s would exceed its quantity; refused", order.id, match)
            status = None
        else:
            status = self._next(order, (event,))
        if status is None:
            self._unrest(order)
            return False
        self._apply(order, (match,), trade_id)
        order.status = status
        if status in TERMINAL:
            self._close(order, None)
        else:
            self.batch.touch(order)
        return True

    def venue_outcome(self, order: EngineOrder, outcome: Any) -> bool:
        """A live venue's answer (`live.VenueOutcome`) for an order, if the table allows the change.

        A stale answer (fills after the venue's cancel, NEW after a fill) is refused and changes nothing.
        UNKNOWN (the venue did not answer) is written, then the order is forgotten: the reconciler is its
        single writer until the venue's answer is in, and a later command reads it from the database.
        """
        target = OrderStatus(outcome.status)
        seen = order.venue_fills_seen
        if target == order.status and len(outcome.fills) <= seen:
            return True  # nothing new
        event = VENUE_EVENTS.get(target)
        if event is None:
            logger.warning("paper engine: order %s: a venue cannot answer %s; refused", order.id, target.value)
            return False
        status = self._next(order, (event,))
        if status is None:
            return False
        order.venue_order_id = outcome.venue_order_id or order.venue_order_id
        if outcome.fee_currency:
            order.fee_currency = outcome.fee_currency
        trade_ids = tuple(outcome.venue_trade_ids)
        for index in range(seen, len(outcome.fills)):
            trade_id = trade_ids[index] if index < len(trade_ids) else ""
            self.batch.add_fill(order, outcome.fills[index], trade_id)
        order.venue_fills_seen = max(seen, len(outcome.fills))
        order.filled = outcome.filled_quantity
        order.notional = (outcome.average_price or ZERO) * outcome.filled_quantity
        order.fees = outcome.fees
        order.status = status
        if status in TERMINAL:
            self._close(order, outcome.reason)
            return True
        order.reason = outcome.reason
        self.batch.touch(order)
        if status == OrderStatus.UNKNOWN:
            self.forget(order)
        else:
            self.track(order)
        return True

    # --- market events ------------------------------------------------------------------------------
    def on_trade(self, trade: Trade) -> None:
        exponents = self.exponents(trade.venue, trade.symbol)
        if exponents is None:
            return
        try:
            aggressor = Side(trade.aggressor)
        except ValueError:
            return  # a venue that does not say who took: it cannot tell which resting side it went through
        price = Decimal(trade.price).scaleb(-exponents[0])
        qty = Decimal(trade.qty).scaleb(-exponents[1])
        for book_id in (f"{self.book_venue}:{trade.symbol}", f"{trade.venue}:{trade.symbol}"):
            book = self.books.get(book_id)
            if book is not None:
                self._fill_resting(book.on_trade(price, qty, aggressor), trade.trade_id)
            if self.book_venue == trade.venue:
                break

    def on_book(self, book_id: str) -> None:
        book = self.books.get(book_id)
        if book is None:
            return
        has_market, bids, asks = self._levels(book_id)
        if has_market:
            self._fill_resting(book.on_book(bids, asks), "")

    def take_batch(self) -> Batch:
        batch, self.batch = self.batch, Batch()
        return batch

    # --- internals ----------------------------------------------------------------------------------
    def _levels(self, book: str) -> tuple[bool, Levels, Levels]:
        """(a trusted two-sided market or not, bids, asks) of `book` now. The levels are converted to
        Decimal once per version of the book (its seq and publish time), not once per order: a batch of
        100 orders on a 200-level book would otherwise convert 40,000 levels. The lists are shared:
        read, never changed."""
        head = self.market.view(book, 0)
        if head is None or head.is_stale:
            return False, [], []
        cached = self._converted.get(book)
        if cached is not None and cached[0] == (head.seq, head.publish_ts_ns):
            return True, cached[1], cached[2]
        view = self.market.view(book, self.depth)
        if view is None or view.is_stale:
            return False, [], []
        bids = to_levels(view.bids, view.price_exp, view.size_exp)
        asks = to_levels(view.asks, view.price_exp, view.size_exp)
        self._converted[book] = ((view.seq, view.publish_ts_ns), bids, asks)
        return True, bids, asks

    def book_of(self, order: EngineOrder) -> str:
        return f"{self.book_venue}:{order.symbol}"

    def _next(self, order: EngineOrder, events: Sequence[Event]) -> OrderStatus | None:
        """The status after `events`, or None (logged) if the table refuses one; the order is not touched."""
        status = order.status
        try:
            for event in events:
                status = next_status(status, event)
        except IllegalTransition as exc:
            logger.warning("paper engine: order %s: %s; refused, it stays as it was", order.id, exc)
            return None
        return status

    def _working(self, order: EngineOrder, bids: Levels, asks: Levels) -> WorkingOrder:
        price = order.price
        if order.type == OrderType.MARKET and price is None:
            price = self._market_limit(order, bids, asks)
        return WorkingOrder(order.id, order.side, order.type, order.time_in_force, price, order.quantity, order.filled)

    def _market_limit(self, order: EngineOrder, bids: Levels, asks: Levels) -> Decimal | None:
        """How far a market order may walk: the protection band around the mid now (validation.py) and, for
        a buy, no further than the price its lock pays for. Placement locked at the band around the mid
        then; the mid may have risen since, and a buy must never spend more than it locked."""
        limit = None
        rules = self.rules(order.symbol)
        reference = _mid(bids, asks)
        if rules is not None and reference is not None:
            limit = protection_price(order.side, reference, rules)
        cap = self._lock_cap(order) if order.side == Side.BUY else None
        if cap is not None:
            limit = cap if limit is None else min(limit, cap)
        return limit

    def _lock_cap(self, order: EngineOrder) -> Decimal | None:
        """The price at which the order's remaining quantity, taker fee included, costs exactly its lock:
        lock / (remaining x (1 + taker bps / 10000)), rounded down. None: a buy with no quote lock (live)."""
        remaining = order.quantity - order.filled
        if not order.is_paper or order.lock_currency != order.quote or remaining <= 0:
            return None
        taker_bps = max(ZERO, self.fees(order.tier_id)[1])  # placement locks no rebate: max(0, fee)
        with localcontext() as context:
            context.rounding = ROUND_FLOOR
            return order.lock_remaining / (remaining * (1 + taker_bps / BPS))

    def _rest(self, order: EngineOrder, working: WorkingOrder, book_id: str, taken: tuple[Match, ...] = ()) -> None:
        book = self.books.get(book_id)
        if book is None:
            book = self.books[book_id] = RestingOrders()
            self.watched = frozenset(self.books)
        book.add(working, taken=taken)
        self.open[order.id] = order

    def _unrest(self, order: EngineOrder) -> None:
        if order.is_paper:
            book = self.books.get(self.book_of(order))
            if book is not None:
                book.cancel(order.id)  # a no-op when matching already took it off

    def _fill_resting(self, fills: list[tuple[WorkingOrder, Match]], trade_id: str) -> None:
        for working, match in fills:
            self.fill(_uuid(working.order_id), match, trade_id)

    def _apply(self, order: EngineOrder, matches: Iterable[Match], trade_id: str = "") -> None:
        maker_bps, taker_bps = self.fees(order.tier_id)
        now_ns = self.clock_ns()
        for match in matches:
            notional = match.price * match.quantity
            fee = fee_for(notional, maker_bps if match.liquidity == "maker" else taker_bps)
            order.filled += match.quantity
            order.notional += notional
            order.fees += fee
            order.fee_currency = order.quote
            fill = FillReport(match.price, match.quantity, fee, order.quote, match.liquidity, now_ns)
            self.batch.add_fill(order, fill, trade_id)

    def _close(self, order: EngineOrder, reason: Reason | str | None) -> None:
        """Bookkeeping of an order that just reached a terminal status: its lock, its write, its book."""
        order.reason = "" if reason is None else str(reason)
        self.batch.release(order)
        self.batch.touch(order)
        if self.open.pop(order.id, None) is not None:
            self._unrest(order)
        self.recent[order.id] = order
        if len(self.recent) > RECENT_KEEP:
            self.recent.popitem(last=False)


def execution_events(execution: Execution) -> tuple[Event, ...]:
    """The events of an execution as the engine applies them: the paper venue acknowledges (`accept`)
    before it trades, so every execution starts with an event only PENDING allows (`accept`, `reject`)."""
    events = execution.events
    if events and events[0] in (Event.ACCEPT, Event.REJECT):
        return events
    return (Event.ACCEPT, *events)


def _mid(bids: Levels, asks: Levels) -> Decimal | None:
    if bids and asks:
        return (bids[0][0] + asks[0][0]) / 2
    return None


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
