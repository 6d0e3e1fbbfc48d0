"""Input and output serializers of the microstructure API."""

from __future__ import annotations

from rest_framework import serializers

from apps.microstructure.services.reads import INTERVAL_NS, WINDOWS_BY_NAME


class MetricsQuerySerializer(serializers.Serializer):
    venue = serializers.CharField(required=False, allow_blank=True, help_text="A venue slug; default consolidated")
    window = serializers.CharField(
        required=False, allow_blank=True, help_text=f"One of {', '.join(WINDOWS_BY_NAME)}; default: every window"
    )


class MetricSerializer(serializers.Serializer):
    value = serializers.JSONField(
        allow_null=True, help_text="A decimal string, an integer, or an object of them by key; null: see reason"
    )
    unit = serializers.CharField()
    inputs = serializers.IntegerField(help_text="How many trades, samples or levels the value used")
    reason = serializers.CharField(allow_null=True, required=False, help_text="Why the value is null")


class CoverageSerializer(serializers.Serializer):
    trades = serializers.CharField(help_text="Seconds of the window whose every trade this server saw")
    samples = serializers.CharField(help_text="Seconds of the window it sampled the top of the book for")


class WindowMetricsSerializer(serializers.Serializer):
    window_s = serializers.IntegerField()
    ts_ns = serializers.IntegerField(help_text="The window ends here, ns since the epoch")
    complete = serializers.BooleanField(
        help_text="false while the server has seen less than the whole window (it started, or preloaded, "
        "less than window_s ago): the flow metrics then describe only `coverage_s`"
    )
    coverage_s = CoverageSerializer()
    metrics = serializers.DictField(child=MetricSerializer(), help_text="Every metric by name")


class MetricsSerializer(serializers.Serializer):
    pair = serializers.CharField()
    venue = serializers.CharField()
    book = serializers.CharField(help_text="venue:PAIR, or consolidated:PAIR")
    ts_ns = serializers.IntegerField(help_text="When the metrics were read, ns since the epoch")
    stale = serializers.BooleanField(help_text="true while the book resynchronises: book metrics are null then")
    windows = serializers.DictField(child=WindowMetricsSerializer(), help_text="By window name: 10s, 1m, 5m")


class HistoryQuerySerializer(serializers.Serializer):
    metric = serializers.CharField(help_text="A bar metric name; an unknown one answers with the list")
    interval = serializers.ChoiceField(choices=list(INTERVAL_NS), default="1m", help_text="1s or 1m bars")
    venue = serializers.CharField(required=False, allow_blank=True, help_text="A venue slug; default consolidated")
    # `from` is a Python keyword: the field is declared below under its JSON name.
    to = serializers.CharField(required=False, allow_blank=True, help_text="ns since the epoch or ISO 8601; now")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100_000, default=1000)


HistoryQuerySerializer._declared_fields["from"] = serializers.CharField(
    required=False, allow_blank=True, help_text="ns since the epoch or ISO 8601; default: limit bars before `to`"
)


class BarSerializer(serializers.Serializer):
    ts_ns = serializers.IntegerField(help_text="End of the bar (a whole second or minute), ns since the epoch")
    value = serializers.CharField(allow_null=True, help_text="Decimal string; null when not computable")


class HistorySerializer(serializers.Serializer):
    pair = serializers.CharField()
    venue = serializers.CharField()
    metric = serializers.CharField()
    interval = serializers.CharField()
    from_ns = serializers.IntegerField()
    to_ns = serializers.IntegerField()
    limit = serializers.IntegerField(help_text="Bars returned at most (capped by HFT_MICRO_HISTORY_MAX_ROWS)")
    bars = BarSerializer(many=True)
    has_more = serializers.BooleanField()
    next_from_ns = serializers.IntegerField(allow_null=True, help_text="Pass as `from` for the next page")
