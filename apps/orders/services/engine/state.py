"""An order as the engine holds it in memory, and what one batch changes: orders, fills, balances.

Balances move on the engine's rules (fees are charged in the quote currency):
- a buy fill of q at p with fee f spends q*p + f of the quote, from its lock first; it credits q of the base;
- a sell fill spends q of the base from its lock first and credits q*p - f of the quote;
- when an order ends, what is left of its lock goes back to available.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from apps.orders.domain.balances import release, settle_fill, spent_from_lock
from apps.orders.domain.types import TERMINAL, OrderStatus, OrderType, Side, TimeInForce
from apps.orders.services.engine.reports import ExecutionReport, FillReport

PAPER = "paper"
PLACES = Decimal("1e-12")  # the models' decimal_places: memory holds what the database holds
ZERO = Decimal(0)


def q12(value: Decimal) -> Decimal:
    return value.quantize(PLACES)


@dataclass(slots=True)
class EngineOrder:
    id: UUID
    customer_id: int
    tier_id: int
    client_order_id: str
    instrument_id: int
    symbol: str
    base: str
    quote: str
    venue: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: Decimal | None
    quantity: Decimal
    filled: Decimal
    notional: Decimal  # sum of price x quantity over the fills, for the average price
    fees: Decimal
    fee_currency: str
    status: OrderStatus
    reason: str
    version: int
    lock_currency: str
    lock_remaining: Decimal  # of the funds placement locked, what fills and releases have not used
    venue_order_id: str = ""
    created_at: datetime | None = None
    venue_fills_seen: int = 0  # a live venue reports every fill so far: those already written are skipped
    # Every fill of the order so far, oldest first (loaded with the order when it had any): what reports carry.
    fills: list[FillReport] = field(default_factory=list)

    @property
    def is_paper(self) -> bool:
        return self.venue == PAPER

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def average_price(self) -> Decimal | None:
        return q12(self.notional / self.filled) if self.filled else None

    def report(self) -> ExecutionReport:
        """Its state now, with every fill so far (also those of an execution another command caused)."""
        return ExecutionReport(
            self.id,
            self.status,
            self.reason,
            self.filled,
            self.average_price,
            self.fees,
            tuple(self.fills),
            self.version,
        )


def order_to_json(order: EngineOrder) -> dict[str, Any]:
    """An order as placement committed it, for an engine in another process (decimal strings, no floats)."""
    return {
        "id": str(order.id),
        "customer_id": order.customer_id,
        "tier_id": order.tier_id,
        "client_order_id": order.client_order_id,
        "instrument_id": order.instrument_id,
        "symbol": order.symbol,
        "base": order.base,
        "quote": order.quote,
        "venue": order.venue,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "price": None if order.price is None else str(order.price),
        "quantity": str(order.quantity),
        "filled": str(order.filled),
        "notional": str(order.notional),
        "fees": str(order.fees),
        "fee_currency": order.fee_currency,
        "status": order.status.value,
        "reason": order.reason,
        "version": order.version,
        "lock_currency": order.lock_currency,
        "lock_remaining": str(order.lock_remaining),
        "venue_order_id": order.venue_order_id,
        "created_at": None if order.created_at is None else order.created_at.isoformat(),
        "venue_fills_seen": order.venue_fills_seen,
        "fills": [fill.to_json() for fill in order.fills],
    }


def order_from_json(data: dict[str, Any]) -> EngineOrder:
    """The inverse of `order_to_json`; KeyError, TypeError or ValueError for anything malformed."""
    return EngineOrder(
        id=UUID(data["id"]),
        customer_id=int(data["customer_id"]),
        tier_id=int(data["tier_id"]),
        client_order_id=str(data["client_order_id"]),
        instrument_id=int(data["instrument_id"]),
        symbol=str(data["symbol"]),
        base=str(data["base"]),
        quote=str(data["quote"]),
        venue=str(data["venue"]),
        side=Side(data["side"]),
        type=OrderType(data["type"]),
        time_in_force=TimeInForce(data["time_in_force"]),
        price=None if data["price"] is None else _decimal(data["price"]),
        quantity=_decimal(data["quantity"]),
        filled=_decimal(data["filled"]),
        notional=_decimal(data["notional"]),
        fees=_decimal(data["fees"]),
        fee_currency=str(data["fee_currency"]),
        status=OrderStatus(data["status"]),
        reason=str(data["reason"]),
        version=int(data["version"]),
        lock_currency=str(data["lock_currency"]),
        lock_remaining=_decimal(data["lock_remaining"]),
        venue_order_id=str(data["venue_order_id"]),
        created_at=None if data["created_at"] is None else datetime.fromisoformat(data["created_at"]),
        venue_fills_seen=int(data["venue_fills_seen"]),
        fills=[FillReport.from_json(fill) for fill in data["fills"]],
    )


def _decimal(text: object) -> Decimal:
    if not isinstance(text, str):
        raise TypeError(f"a decimal travels as a string, not {type(text).__name__}")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class NewFill:
    order_id: UUID
    customer_id: int
    report: FillReport
    venue_trade_id: str


@dataclass
class Batch:
    """Everything one flush writes in one transaction."""

    orders: dict[UUID, EngineOrder] = field(default_factory=dict)  # changed, latest state
    # Each changed order's version before this batch: the write applies only where the row still has it.
    base_versions: dict[UUID, int] = field(default_factory=dict)
    fills: list[NewFill] = field(default_factory=list)
    fills_by_order: defaultdict[UUID, list[FillReport]] = field(default_factory=lambda: defaultdict(list))
    # (customer id, currency) -> [change to available, change to locked]
    balances: defaultdict[tuple[int, str], list[Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: [ZERO, ZERO])
    )

    def __len__(self) -> int:
        return len(self.orders) + len(self.fills)

    def touch(self, order: EngineOrder) -> None:
        self.base_versions.setdefault(order.id, order.version)
        order.version += 1
        self.orders[order.id] = order

    def add_fill(self, order: EngineOrder, fill: FillReport, venue_trade_id: str = "") -> None:
        self.fills.append(NewFill(order.id, order.customer_id, fill, venue_trade_id))
        self.fills_by_order[order.id].append(fill)
        order.fills.append(fill)
        if order.is_paper:
            self._settle(order, fill)

    def release(self, order: EngineOrder) -> None:
        """An order ended: the rest of its lock becomes available again."""
        if order.is_paper and order.lock_remaining:
            change = release(order.lock_currency, order.lock_remaining)
            delta = self.balances[(order.customer_id, change.currency)]
            delta[0] += change.available_delta
            delta[1] += change.locked_delta
        order.lock_remaining = ZERO

    def fills_of(self, order_id: UUID) -> tuple[FillReport, ...]:
        return tuple(self.fills_by_order.get(order_id, ()))

    def _settle(self, order: EngineOrder, fill: FillReport) -> None:
        # The domain's rules (apps/orders/domain/balances.py): fees are rounded up per fill, so n fills at the
        # lock's price may cost n x 1e-12 more than the lock (a market buy's walk is capped at the price its
        # lock implies); that sliver comes out of available.
        spends = order.quote if order.side == Side.BUY else order.base
        lock_left = order.lock_remaining if spends == order.lock_currency else ZERO
        changes = settle_fill(
            order.side,
            base=order.base,
            quote=order.quote,
            price=fill.price,
            quantity=fill.quantity,
            fee=fill.fee,
            lock_left=lock_left,
        )
        for change in changes:
            delta = self.balances[(order.customer_id, change.currency)]
            delta[0] += change.available_delta
            delta[1] += change.locked_delta
        order.lock_remaining -= spent_from_lock(
            order.side, price=fill.price, quantity=fill.quantity, fee=fill.fee, lock_left=lock_left
        )
