"""Admin for orders (read-only: the engine is their single writer), balances, trading rules, fees, credentials.

Venue credentials are entered through a write-only, encrypt-on-save form (their secret is never displayed).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.orders.models import Balance, DeadMansSwitch, FeeSchedule, Fill, Order, TradingRules, VenueCredential
from apps.orders.services.live.admin_forms import VenueCredentialForm


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FillInline(ReadOnlyMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = Fill
    extra = 0
    can_delete = False
    fields = ("ts_ns", "price", "quantity", "fee", "fee_currency", "liquidity", "venue_trade_id")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "client_order_id",
        "customer",
        "instrument",
        "venue",
        "side",
        "type",
        "time_in_force",
        "price",
        "quantity",
        "filled_quantity",
        "status",
        "reason",
        "created_at",
    )
    list_filter = ("status", "venue", "side", "type", "time_in_force")
    search_fields = ("client_order_id", "id", "customer__name", "venue_order_id")
    list_select_related = ("customer", "instrument")
    date_hierarchy = "created_at"
    inlines = [FillInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # orders and fills are the customer's trading record


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("customer", "currency", "available", "locked")
    list_filter = ("currency",)
    search_fields = ("customer__name", "currency")
    list_select_related = ("customer",)
    readonly_fields = ("locked",)  # held behind open orders: only the engine releases it


@admin.register(TradingRules)
class TradingRulesAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("instrument", "tick_size", "lot_size", "min_notional", "price_band_bps", "is_trading")
    list_select_related = ("instrument",)
    search_fields = ("instrument__symbol",)


@admin.register(FeeSchedule)
class FeeScheduleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("tier", "maker_fee_bps", "taker_fee_bps")
    list_select_related = ("tier",)


@admin.register(VenueCredential)
class VenueCredentialAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Staff add or replace a customer's credential; the secret is write-only, encrypted on save, never shown.

    Customers manage their own over the API (PUT /api/hft/venue-credentials/{venue}); this is for support. The
    stored ciphertext is not a field of the form, the list, or the read-only fields: nothing renders it.
    """

    form = VenueCredentialForm
    list_display = ("customer", "venue", "api_key", "created_at", "updated_at")
    fields = ("customer", "venue", "api_key", "secret", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")
    list_filter = ("venue",)
    search_fields = ("customer__name", "venue")
    list_select_related = ("customer",)


@admin.register(DeadMansSwitch)
class DeadMansSwitchAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("customer", "fires_at", "armed_at")
    list_select_related = ("customer",)
