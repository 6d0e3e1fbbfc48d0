"""Admin for recorded trades and metric bars (read-only: the recorder writes them)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.microstructure.models import MetricBar, Trade


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("instrument", "venue", "trade_id", "price", "qty", "aggressor", "exchange_ts_ns")
    list_filter = ("venue", "aggressor")
    search_fields = ("instrument__symbol", "trade_id")
    list_select_related = ("instrument", "venue")
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is too slow


@admin.register(MetricBar)
class MetricBarAdmin(ReadOnlyAdmin):
    list_display = ("instrument", "venue", "interval", "ts", "metric", "value")
    list_filter = ("interval", "venue")
    search_fields = ("instrument__symbol", "metric")
    list_select_related = ("instrument",)
    show_full_result_count = False
