"""What the live venue adapters take and answer: an order as sent to a venue, and the venue's outcome of it.

Prices and quantities are `Decimal` (decimal strings on the wire). A `VenueOutcome` with status UNKNOWN means
the venue did not answer in time: the order may or may not exist there; it is reconciled, never re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from apps.orders.domain.types import OrderStatus, OrderType, Side, TimeInForce
from apps.orders.services.engine.reports import FillReport

__all__ = ["FillReport", "LiveOrder", "VenueCredentials", "VenueOutcome"]


@dataclass(frozen=True, slots=True)
class LiveOrder:
    order_id: UUID
    customer_id: int
    client_order_id: str
    symbol: str  # ours, "BTC-USDT"; the adapter maps it to the venue's symbol
    venue: str  # a live venue slug, one of live_venues()
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: Decimal | None
    quantity: Decimal
    # An upper bound on when the order was sent (e.g. when it was marked UNKNOWN). Reconciliation needs it to
    # conclude that an order the venue does not know never reached it; None: "not found" stays UNKNOWN.
    sent_before: datetime | None = None

    @property
    def venue_client_order_id(self) -> str:
        """The id the venue knows the order by: our order's UUID in hex (32 characters, never reused, and inside
        Binance's `^[.A-Z:/a-z0-9_-]{1,36}$`), so it cannot collide with the customer's other use of the account."""
        return self.order_id.hex


@dataclass(frozen=True, slots=True)
class VenueOutcome:
    status: OrderStatus
    reason: str  # a Reason value, "" when none applies
    venue_order_id: str
    filled_quantity: Decimal
    average_price: Decimal | None
    fees: Decimal
    fee_currency: str
    # place: the fills of the immediate execution; reconcile/cancel: every fill of the order the venue reports.
    fills: tuple[FillReport, ...] = field(default=())
    venue_trade_ids: tuple[str, ...] = field(default=())  # one per fill, in the same order ("" if unknown)
    venue_code: int | None = None  # the venue's own error code, when it refused (for logs and support)
    venue_message: str = ""


@dataclass(frozen=True, slots=True)
class VenueCredentials:
    api_key: str
    secret: str

    def __repr__(self) -> str:  # never print a secret into a log or a traceback
        return f"VenueCredentials(api_key={self.api_key[:6]}..., secret=***)"
