"""Input and output serializers of the orders API (outputs document the JSON that `services/updates.py` renders).

Inputs check the shape only (types, enums, decimal strings); the trading rules (grid, notional, band,
balance) are the domain's and answer with reason codes per order, not with a 400.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.orderbook.services.feeds import normalise_symbol
from apps.orders.domain.types import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from apps.orders.models import PAPER_VENUE

CLIENT_ORDER_ID = r"^[A-Za-z0-9._:\-]{1,64}$"
MAX_DECIMAL_PLACES = 12  # the columns' scale
MAX_INTEGER_DIGITS = 16  # 28 digits in all


@extend_schema_field({"type": "string", "format": "decimal", "example": "65000.10"})
class DecimalStringField(serializers.Field):
    """An exact decimal sent as a string ("65000.10"); integers are accepted, floats never (they are not exact)."""

    default_error_messages = {
        "invalid": 'A decimal string such as "65000.10" (floats are not exact: send strings).',
        "not_finite": "Must be a finite number.",
        "too_precise": f"At most {MAX_DECIMAL_PLACES} decimal places and {MAX_INTEGER_DIGITS} integer digits.",
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("invalid")
        try:
            value = Decimal(str(data).strip())
        except InvalidOperation:
            self.fail("invalid")
        if not value.is_finite():
            self.fail("not_finite")
        if value.is_zero():
            return Decimal(0)  # "-0", "0e400": one zero, stored and rendered as "0"
        exponent = value.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        # adjusted() + 1 counts the integer digits of any notation ("1e20" has 21, "0.5" has 0 or fewer),
        # so a value the numeric(28, 12) columns cannot hold is a 400 here, never a database error.
        if places > MAX_DECIMAL_PLACES or value.adjusted() + 1 > MAX_INTEGER_DIGITS:
            self.fail("too_precise")
        return value

    def to_representation(self, value: Decimal) -> str:
        return str(value)


class LowercaseChoiceField(serializers.ChoiceField):
    """Case-insensitive choices (`BUY`, `buy`; `post_only`, `POST_ONLY`)."""

    def __init__(self, choices: list[str], *, upper: bool = False, **kwargs: Any) -> None:
        self.upper = upper
        super().__init__(choices=choices, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            data = data.strip().upper() if self.upper else data.strip().lower()
        return super().to_internal_value(data)


def default_time_in_force(order_type: OrderType) -> TimeInForce:
    return TimeInForce.IOC if order_type is OrderType.MARKET else TimeInForce.GTC


class OrderInSerializer(serializers.Serializer):
    client_order_id = serializers.RegexField(
        CLIENT_ORDER_ID,
        required=False,
        help_text="Your id for the order, unique per customer (1-64 of A-Z a-z 0-9 . _ : -); a retry with the "
        "same id returns the original order. Generated when absent (then a retry is a new order).",
    )
    pair = serializers.CharField(max_length=40, help_text="BTC-USDT or BTC/USDT")
    venue = serializers.CharField(
        max_length=32, default=PAPER_VENUE, help_text='"paper" (default) or a live venue with your credentials'
    )
    side = LowercaseChoiceField([s.value for s in Side])
    type = LowercaseChoiceField([t.value for t in OrderType], default=OrderType.LIMIT.value)
    time_in_force = LowercaseChoiceField(
        [t.value for t in TimeInForce], upper=True, required=False, help_text="Default: GTC for limit, IOC for market"
    )
    price = DecimalStringField(required=False, allow_null=True, help_text="Limit price; omit for market orders")
    quantity = DecimalStringField(help_text="In the base currency")

    def to_request(self, data: dict[str, Any], generated_id: str) -> OrderRequest:
        return OrderRequest(
            client_order_id=data.get("client_order_id") or generated_id,
            symbol=normalise_symbol(data["pair"]),
            venue=data["venue"],
            side=Side(data["side"]),
            type=OrderType(data["type"]),
            time_in_force=TimeInForce(data.get("time_in_force") or default_time_in_force(OrderType(data["type"]))),
            quantity=data["quantity"],
            price=data.get("price"),
        )


class PlaceOrderInSerializer(OrderInSerializer):
    validate_only = serializers.BooleanField(default=False, help_text="Check only; nothing is placed or recorded")


class BatchInSerializer(serializers.Serializer):
    orders = serializers.ListField(child=OrderInSerializer(), allow_empty=False, max_length=1000)
    atomic = serializers.BooleanField(default=False, help_text="All orders or none")
    validate_only = serializers.BooleanField(default=False, help_text="Check only; nothing is placed or recorded")


class CancelBatchInSerializer(serializers.Serializer):
    order_ids = serializers.ListField(child=serializers.UUIDField(), allow_empty=False, max_length=1000)


class CancelAllInSerializer(serializers.Serializer):
    pair = serializers.CharField(required=False, max_length=40, help_text="Only this pair's orders")


class CancelAllAfterInSerializer(serializers.Serializer):
    timeout_ms = serializers.IntegerField(min_value=0, help_text="Cancel all unless called again within; 0 disarms")


class OrderListQuerySerializer(serializers.Serializer):
    status = LowercaseChoiceField([s.value for s in OrderStatus] + ["OPEN"], upper=True, required=False)
    pair = serializers.CharField(required=False, max_length=40)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    cursor = serializers.CharField(required=False, max_length=200, help_text="next_cursor of the previous page")


# --- outputs (documentation of the rendered JSON) -------------------------------------------------------


class FillOutSerializer(serializers.Serializer):
    price = serializers.CharField()
    quantity = serializers.CharField()
    fee = serializers.CharField()
    fee_currency = serializers.CharField()
    liquidity = serializers.ChoiceField(["maker", "taker"])
    ts_ns = serializers.IntegerField(help_text="Execution time, ns since the epoch")


class OrderOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    client_order_id = serializers.CharField()
    pair = serializers.CharField()
    venue = serializers.CharField()
    side = serializers.CharField()
    type = serializers.CharField()
    time_in_force = serializers.CharField()
    price = serializers.CharField(allow_null=True)
    quantity = serializers.CharField()
    filled_quantity = serializers.CharField()
    remaining_quantity = serializers.CharField()
    average_price = serializers.CharField(allow_null=True)
    fees = serializers.CharField()
    fee_currency = serializers.CharField()
    status = serializers.ChoiceField([s.value for s in OrderStatus])
    reason = serializers.CharField(allow_null=True, help_text="A reason code (docs/orders.md)")
    venue_order_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    version = serializers.IntegerField(help_text="+1 on every change")


class OrderDetailOutSerializer(OrderOutSerializer):
    fills = FillOutSerializer(many=True)


class PlacementResultOutSerializer(serializers.Serializer):
    client_order_id = serializers.CharField()
    status = serializers.CharField(help_text="The order's status, or VALIDATED (validate_only)")
    reason = serializers.CharField(allow_null=True)
    duplicate = serializers.BooleanField(help_text="A retry: the original order, nothing created")
    order = OrderOutSerializer(allow_null=True)
    fills = FillOutSerializer(many=True, help_text="Fills of this placement")


class BatchOutSerializer(serializers.Serializer):
    results = PlacementResultOutSerializer(many=True, help_text="One per order, in request order")
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    atomic = serializers.BooleanField()
    validate_only = serializers.BooleanField()


class OrderPageOutSerializer(serializers.Serializer):
    results = OrderOutSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class CancelResultOutSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    canceled = serializers.BooleanField()
    error = serializers.CharField(allow_null=True, help_text="order_not_found | order_not_open")
    order = OrderOutSerializer(allow_null=True)


class CancelBatchOutSerializer(serializers.Serializer):
    results = CancelResultOutSerializer(many=True)


class CancelAllOutSerializer(serializers.Serializer):
    cancel_requested = serializers.IntegerField(help_text="Open orders a cancel was sent for")


class DeadMansSwitchOutSerializer(serializers.Serializer):
    armed = serializers.BooleanField()
    timeout_ms = serializers.IntegerField()
    fires_at = serializers.DateTimeField(allow_null=True)


class BalanceOutSerializer(serializers.Serializer):
    currency = serializers.CharField()
    available = serializers.CharField()
    locked = serializers.CharField()
    total = serializers.CharField()
