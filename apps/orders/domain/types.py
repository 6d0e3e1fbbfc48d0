"""The vocabulary of orders: sides, types, time in force, statuses, reason codes, and an order's request.

Prices and quantities are `Decimal` (exact); the instrument's grid says which values are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class OrderStatus(StrEnum):
    PENDING = "PENDING"  # accepted by us, not yet acknowledged by the execution venue
    NEW = "NEW"  # resting (or about to execute) at the venue
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"  # a live venue did not answer in time: reconciled by client_order_id, never re-sent


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class Reason(StrEnum):
    """Stable machine codes for a rejection, cancellation or expiry (documented in docs/orders.md)."""

    UNKNOWN_INSTRUMENT = "unknown_instrument"
    INSTRUMENT_NOT_TRADING = "instrument_not_trading"
    UNKNOWN_VENUE = "unknown_venue"
    INVALID_PRICE = "invalid_price"
    INVALID_QUANTITY = "invalid_quantity"
    PRICE_OFF_GRID = "price_off_grid"
    QUANTITY_OFF_GRID = "quantity_off_grid"
    PRICE_NOT_ALLOWED = "price_not_allowed"  # a market order with a price
    PRICE_REQUIRED = "price_required"  # a limit order without one
    INVALID_TIME_IN_FORCE = "invalid_time_in_force"  # a market order cannot be post-only
    BELOW_MIN_NOTIONAL = "below_min_notional"
    PRICE_OUTSIDE_BAND = "price_outside_band"  # fat finger: too far from mid
    NO_MARKET = "no_market"  # no trusted book to price or execute against
    INSUFFICIENT_BALANCE = "insufficient_balance"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    FOK_NOT_FILLABLE = "fok_not_fillable"
    IOC_REMAINDER = "ioc_remainder"  # the unfilled rest of an IOC or market order, expired
    CANCELED_BY_CUSTOMER = "canceled_by_customer"
    DEAD_MANS_SWITCH = "dead_mans_switch"
    VENUE_REJECTED = "venue_rejected"
    VENUE_TIMEOUT = "venue_timeout"
    VENUE_UNAVAILABLE = "venue_unavailable"  # live venue unreachable or rate-limiting us: the order was not sent
    VENUE_AUTH_FAILED = "venue_auth_failed"  # the venue refused the customer's key or signature
    VENUE_CREDENTIALS_MISSING = "venue_credentials_missing"  # no credential stored for that customer and venue
    VENUE_CREDENTIALS_INVALID = "venue_credentials_invalid"  # stored, but undecryptable with our key
    VENUE_EXPIRED = "venue_expired"  # the live venue expired a resting order
    SELF_TRADE_PREVENTED = "self_trade_prevented"  # the live venue expired it to stop a self-trade
    UNSUPPORTED_ORDER = "unsupported_order"  # a type/time-in-force pair the live venue does not offer
    ATOMIC_BATCH_FAILED = "atomic_batch_failed"  # valid itself, not placed because another order was not


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str  # "BTC-USDT"
    venue: str  # "paper" or a live venue's slug
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None = None  # required for LIMIT, refused for MARKET
