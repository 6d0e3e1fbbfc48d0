"""Binance spot's signed REST protocol as pure functions: signing, order parameters, and reading its answers.

No I/O and no clock: the timestamp is a parameter. Every number crosses the wire as a decimal string, and
every number read back is parsed with `Decimal`, never `float`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import urlencode

from apps.orders.domain.types import OrderStatus, OrderType, Reason, TimeInForce
from apps.orders.services.engine.reports import FillReport
from apps.orders.services.live.errors import VenueProtocolError
from apps.orders.services.live.types import LiveOrder, VenueOutcome

ORDER_PATH = "/api/v3/order"
TRADES_PATH = "/api/v3/myTrades"
ORDER_DOES_NOT_EXIST = -2013  # query: "Order does not exist."
UNKNOWN_ORDER_SENT = -2011  # cancel: "Unknown order sent." (already done, or never there)
# Codes after which Binance says the execution status is unknown: never read as "not placed".
UNKNOWN_EXECUTION_CODES = frozenset({-1006, -1007})
AUTH_CODES = frozenset({-1022, -2014, -2015})
AMOUNT_QUANTUM = Decimal("1e-12")  # the Order model's decimal places

_ORDER_STATUS = {
    "NEW": OrderStatus.NEW,
    "PENDING_NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.NEW,  # documented as unused; still working until it says otherwise
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


class BinanceError(Exception):
    """An error body `{"code": -2010, "msg": "..."}` with the HTTP status it came with."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(f"binance {http_status} {code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of the exact query string (or form body) sent, hex: Binance's `signature`."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(params: Sequence[tuple[str, str]], secret: str, *, timestamp_ms: int, recv_window_ms: int) -> str:
    """The url-encoded parameters plus recvWindow and timestamp, with the signature over exactly that string."""
    payload = urlencode([*params, ("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))])
    return f"{payload}&signature={sign(secret, payload)}"


def decimal_text(value: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros: Decimal("1E+2") -> "100"."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def order_params(order: LiveOrder, venue_symbol: str) -> list[tuple[str, str]] | None:
    """`POST /api/v3/order` parameters, or None for an order Binance spot does not offer (market FOK/post-only)."""
    params = [
        ("symbol", venue_symbol),
        ("side", order.side.value.upper()),
        ("newClientOrderId", order.venue_client_order_id),
        ("newOrderRespType", "FULL"),
        ("quantity", decimal_text(order.quantity)),
    ]
    if order.type == OrderType.MARKET:
        # Binance market orders are immediate-or-cancel by nature; FOK and maker-only do not exist for them.
        if order.time_in_force in {TimeInForce.FOK, TimeInForce.POST_ONLY}:
            return None
        return [*params, ("type", "MARKET")]
    if order.price is None:
        return None
    params.append(("price", decimal_text(order.price)))
    if order.time_in_force == TimeInForce.POST_ONLY:
        return [*params, ("type", "LIMIT_MAKER")]
    return [*params, ("type", "LIMIT"), ("timeInForce", order.time_in_force.value)]


def lookup_params(order: LiveOrder, venue_symbol: str) -> list[tuple[str, str]]:
    """`GET`/`DELETE /api/v3/order` parameters: by our client order id, the only id known after a timeout."""
    return [("symbol", venue_symbol), ("origClientOrderId", order.venue_client_order_id)]


def rejection_reason(code: int, message: str) -> Reason:
    """Our reason code for a Binance refusal of a new order."""
    text = message.lower()
    if code in AUTH_CODES:
        return Reason.VENUE_AUTH_FAILED
    if code == -1121:
        return Reason.UNKNOWN_INSTRUMENT
    if "immediately match" in text:
        return Reason.POST_ONLY_WOULD_TAKE
    if "insufficient balance" in text:
        return Reason.INSUFFICIENT_BALANCE
    if code == -1013 and "notional" in text:
        return Reason.BELOW_MIN_NOTIONAL
    if code == -1013 and ("lot_size" in text or "market_lot_size" in text):
        return Reason.QUANTITY_OFF_GRID
    if code == -1013 and ("price_filter" in text or "percent_price" in text):
        return Reason.PRICE_OFF_GRID
    if code in {-1003, -1015}:  # too many requests / orders: refused before the matching engine
        return Reason.VENUE_UNAVAILABLE
    return Reason.VENUE_REJECTED


def rejected_outcome(error: BinanceError) -> VenueOutcome:
    return VenueOutcome(
        status=OrderStatus.REJECTED,
        reason=rejection_reason(error.code, error.message).value,
        venue_order_id="",
        filled_quantity=Decimal(0),
        average_price=None,
        fees=Decimal(0),
        fee_currency="",
        venue_code=error.code,
        venue_message=error.message,
    )


def order_outcome(
    order: LiveOrder, body: Mapping[str, Any], fills: tuple[FillReport, ...], trade_ids: tuple[str, ...] = ()
) -> VenueOutcome:
    """Our view of a Binance order body (new-order FULL response, query or cancel answer) and its fills."""
    try:
        raw_status = str(body["status"])
        executed = Decimal(str(body["executedQty"]))
        quote = Decimal(str(body["cummulativeQuoteQty"]))
        venue_order_id = str(body["orderId"])
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise VenueProtocolError(f"unreadable Binance order body: {exc!r}", detail=dict(body)) from exc
    if raw_status not in _ORDER_STATUS:
        raise VenueProtocolError(f"unknown Binance order status {raw_status!r}", detail=dict(body))
    status = _ORDER_STATUS[raw_status]
    if status == OrderStatus.NEW and executed > 0:
        status = OrderStatus.PARTIALLY_FILLED
    fees, fee_currency = _fees(fills)
    return VenueOutcome(
        status=status,
        reason=_reason_for(order, raw_status).value if status in _REASONED else "",
        venue_order_id=venue_order_id,
        filled_quantity=executed,
        average_price=_average_price(executed, quote, fills),
        fees=fees,
        fee_currency=fee_currency,
        fills=fills,
        venue_trade_ids=trade_ids or ("",) * len(fills),
    )


_REASONED = frozenset({OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


def _reason_for(order: LiveOrder, raw_status: str) -> Reason:
    if raw_status == "CANCELED":
        return Reason.CANCELED_BY_CUSTOMER
    if raw_status == "REJECTED":
        return Reason.VENUE_REJECTED
    if raw_status == "EXPIRED_IN_MATCH":
        return Reason.SELF_TRADE_PREVENTED
    if order.type == OrderType.MARKET or order.time_in_force == TimeInForce.IOC:
        return Reason.IOC_REMAINDER
    if order.time_in_force == TimeInForce.FOK:
        return Reason.FOK_NOT_FILLABLE
    return Reason.VENUE_EXPIRED


def _average_price(executed: Decimal, quote: Decimal, fills: tuple[FillReport, ...]) -> Decimal | None:
    if executed <= 0:
        return None
    if quote <= 0 and fills:  # very old orders report cummulativeQuoteQty as -1: use the fills
        quote = sum((fill.price * fill.quantity for fill in fills), Decimal(0))
    if quote <= 0:
        return None
    return (quote / executed).quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_EVEN)


def _fees(fills: tuple[FillReport, ...]) -> tuple[Decimal, str]:
    """The order's fees in the currency of its first fill; each Fill row keeps its own currency regardless."""
    if not fills:
        return Decimal(0), ""
    currency = fills[0].fee_currency
    return sum((fill.fee for fill in fills if fill.fee_currency == currency), Decimal(0)), currency


def response_trade_ids(body: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(fill.get("tradeId", "")) for fill in body.get("fills", ()))


def response_fills(body: Mapping[str, Any]) -> tuple[FillReport, ...]:
    """The `fills` of a FULL new-order response: the immediate executions, so the order was the taker."""
    ts_ns = int(body.get("transactTime", 0)) * 1_000_000
    try:
        return tuple(
            FillReport(
                price=Decimal(str(fill["price"])),
                quantity=Decimal(str(fill["qty"])),
                fee=Decimal(str(fill["commission"])),
                fee_currency=str(fill["commissionAsset"]),
                liquidity="taker",
                ts_ns=ts_ns,
            )
            for fill in body.get("fills", ())
        )
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise VenueProtocolError(f"unreadable Binance fill: {exc!r}") from exc


def trade_fills(trades: Sequence[Mapping[str, Any]]) -> tuple[tuple[FillReport, ...], tuple[str, ...]]:
    """`GET /api/v3/myTrades` rows of one order as fills and their trade ids, in venue trade id order."""
    try:
        ordered = sorted(trades, key=lambda trade: int(trade["id"]))
        fills = tuple(
            FillReport(
                price=Decimal(str(trade["price"])),
                quantity=Decimal(str(trade["qty"])),
                fee=Decimal(str(trade["commission"])),
                fee_currency=str(trade["commissionAsset"]),
                liquidity="maker" if trade["isMaker"] else "taker",
                ts_ns=int(trade["time"]) * 1_000_000,
            )
            for trade in ordered
        )
    except (KeyError, ArithmeticError, ValueError, TypeError) as exc:
        raise VenueProtocolError(f"unreadable Binance trade: {exc!r}") from exc
    return fills, tuple(str(trade["id"]) for trade in ordered)
