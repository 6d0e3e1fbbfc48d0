"""Orders, fills, paper balances, trading rules, fee schedules, venue credentials and dead man's switches.

Every price, quantity, fee and balance is a `Decimal` (max 28 digits, 12 decimals); none is ever a float.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models

from apps.orders.domain.types import OrderStatus, OrderType, Side, TimeInForce

PAPER_VENUE = "paper"


def _amount(**kwargs: object) -> models.DecimalField:  # type: ignore[type-arg]
    return models.DecimalField(max_digits=28, decimal_places=12, **kwargs)  # type: ignore[arg-type]


def _choices(enum: type[Side] | type[OrderType] | type[TimeInForce] | type[OrderStatus]) -> list[tuple[str, str]]:
    return [(member.value, member.value) for member in enum]


class TradingRules(models.Model):
    """An instrument's order grid and risk bands; absent, defaults from its exponents and settings apply."""

    instrument = models.OneToOneField("orderbook.Instrument", on_delete=models.CASCADE, related_name="trading_rules")
    tick_size = _amount(help_text="Prices must be a multiple of this.")
    lot_size = _amount(help_text="Quantities must be a multiple of this.")
    min_notional = _amount(default=Decimal(0), help_text="price x quantity at least this, in the quote currency.")
    price_band_bps = models.PositiveIntegerField(default=500, help_text="Limit price at most this far from mid.")
    is_trading = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "trading rules"

    def __str__(self) -> str:
        return f"rules for {self.instrument_id}"


class FeeSchedule(models.Model):
    """Paper-trading fees of one tier, in basis points of notional."""

    tier = models.OneToOneField("tiers.Tier", on_delete=models.CASCADE, related_name="fee_schedule")
    maker_fee_bps = models.DecimalField(max_digits=8, decimal_places=3)
    taker_fee_bps = models.DecimalField(max_digits=8, decimal_places=3)

    def __str__(self) -> str:
        return f"fees for tier {self.tier_id}: {self.maker_fee_bps}/{self.taker_fee_bps} bps"


class Balance(models.Model):
    """A customer's paper balance in one currency: `available` to spend, `locked` behind open orders."""

    customer = models.ForeignKey("tiers.Customer", on_delete=models.CASCADE, related_name="balances")
    currency = models.CharField(max_length=20)
    available = _amount(default=Decimal(0))
    locked = _amount(default=Decimal(0))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "currency"], name="balance_customer_currency")]
        ordering = ["customer_id", "currency"]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.currency}: {self.available} (+{self.locked} locked)"


# The columns an execution changes (the engine's batch UPDATE, the live reconciler's bulk_update).
ORDER_STATE_FIELDS = (
    "status",
    "reason",
    "filled_quantity",
    "average_price",
    "fees",
    "fee_currency",
    "venue_order_id",
    "locked_amount",
    "version",
    "updated_at",
)


class Order(models.Model):
    """One order of one customer; the execution engine is its single writer after submission."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey("tiers.Customer", on_delete=models.PROTECT, related_name="orders")
    api_key = models.ForeignKey("tiers.APIKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="orders")
    client_order_id = models.CharField(max_length=64)
    instrument = models.ForeignKey("orderbook.Instrument", on_delete=models.PROTECT, related_name="orders")
    venue = models.CharField(max_length=32, default=PAPER_VENUE, help_text='"paper" or a live venue slug.')
    side = models.CharField(max_length=4, choices=_choices(Side))
    type = models.CharField(max_length=8, choices=_choices(OrderType))
    time_in_force = models.CharField(max_length=9, choices=_choices(TimeInForce), default=TimeInForce.GTC.value)
    price = _amount(null=True, blank=True)
    quantity = _amount()
    filled_quantity = _amount(default=Decimal(0))
    average_price = _amount(null=True, blank=True)
    fees = _amount(default=Decimal(0))
    fee_currency = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=16, choices=_choices(OrderStatus), default=OrderStatus.PENDING.value)
    reason = models.CharField(max_length=40, blank=True, help_text="A stable reason code (docs/orders.md).")
    venue_order_id = models.CharField(max_length=64, blank=True)
    # Funds still held for this order (services/balances.py): released exactly when it ends.
    locked_amount = _amount(default=Decimal(0))
    locked_currency = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, help_text="+1 on every change; updates carry it.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "client_order_id"], name="order_customer_client_order_id")
        ]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="order_customer_created"),
            models.Index(fields=["customer", "status"], name="order_customer_status"),
            models.Index(fields=["status", "venue"], name="order_status_venue"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.quantity} {self.instrument_id} ({self.status})"


class Fill(models.Model):
    """One execution of part of an order."""

    class Liquidity(models.TextChoices):
        MAKER = "maker", "Maker"
        TAKER = "taker", "Taker"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    customer = models.ForeignKey("tiers.Customer", on_delete=models.PROTECT, related_name="fills")
    price = _amount()
    quantity = _amount()
    fee = _amount(default=Decimal(0))
    fee_currency = models.CharField(max_length=20, blank=True)
    liquidity = models.CharField(max_length=5, choices=Liquidity.choices)
    venue_trade_id = models.CharField(max_length=64, blank=True)
    ts_ns = models.BigIntegerField(help_text="Execution time, ns since the epoch.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["customer", "-ts_ns"], name="fill_customer_ts")]
        ordering = ["ts_ns", "id"]

    def __str__(self) -> str:
        return f"{self.quantity} @ {self.price} ({self.liquidity})"


class VenueCredential(models.Model):
    """A customer's API key on a live venue; the secret is stored encrypted (services/credentials.py)."""

    customer = models.ForeignKey("tiers.Customer", on_delete=models.CASCADE, related_name="venue_credentials")
    venue = models.CharField(max_length=32)
    api_key = models.CharField(max_length=256)
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "venue"], name="venue_credential_customer_venue")]

    def __str__(self) -> str:
        return f"{self.customer_id} on {self.venue}"


class DeadMansSwitch(models.Model):
    """Cancel-all-after: when `fires_at` passes without being pushed back, every open order is canceled."""

    customer = models.OneToOneField("tiers.Customer", on_delete=models.CASCADE, related_name="dead_mans_switch")
    fires_at = models.DateTimeField(null=True, blank=True, db_index=True, help_text="Empty: disarmed.")
    armed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "dead man's switches"

    def __str__(self) -> str:
        return f"{self.customer_id} fires at {self.fires_at}"
