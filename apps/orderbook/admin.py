"""Admin for venues, instruments and listings."""

from django.contrib import admin

from apps.orderbook.models import Instrument, Listing, Venue


class ListingInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Listing
    extra = 0


@admin.register(Venue)
class VenueAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("slug", "name", "kind", "protocol")


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("symbol", "base", "quote", "price_exp", "size_exp", "is_trading")
    search_fields = ("symbol", "base", "quote")
    inlines = [ListingInline]
