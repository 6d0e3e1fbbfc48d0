"""Input and output serializers of the order-book API."""

from __future__ import annotations

from rest_framework import serializers

from apps.orderbook.services.latency import STAGE_ORDER
from telemetry.layout import WINDOWS


class SnapshotQuerySerializer(serializers.Serializer):
    venue = serializers.CharField(required=False, allow_blank=True, help_text="A venue slug; default consolidated")
    depth = serializers.IntegerField(required=False, min_value=1, max_value=100_000, help_text="Levels per side")
    breakdown = serializers.BooleanField(
        required=False, default=False, help_text="Consolidated only: each venue's size at the levels shown"
    )


class DeltasQuerySerializer(serializers.Serializer):
    since_sequence = serializers.IntegerField(min_value=0, help_text="The last sequence you have")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    venue = serializers.CharField(required=False, allow_blank=True)


class VenueListingSerializer(serializers.Serializer):
    venue = serializers.CharField()
    venue_id = serializers.IntegerField(
        help_text="The venue id used by the binary protocol; 0 stands for the consolidated book"
    )
    venue_symbol = serializers.CharField()
    price_decimals = serializers.IntegerField()
    size_decimals = serializers.IntegerField()


class InstrumentSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The instrument id used by the binary protocol")
    symbol = serializers.CharField()
    base = serializers.CharField()
    quote = serializers.CharField()
    price_decimals = serializers.IntegerField()
    size_decimals = serializers.IntegerField()
    is_trading = serializers.BooleanField()
    venues = VenueListingSerializer(many=True)


class LevelsField(serializers.ListField):
    child = serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2)


class SnapshotSerializer(serializers.Serializer):
    pair = serializers.CharField()
    venue = serializers.CharField()
    bids = LevelsField(help_text="[price, size] as decimal strings, best first")
    asks = LevelsField(help_text="[price, size] as decimal strings, best first")
    sequence = serializers.IntegerField()
    timestamp = serializers.IntegerField(help_text="Publish time of the last event, ns since the epoch")
    exchange_timestamp = serializers.IntegerField(allow_null=True, help_text="Venue event time, ns")
    stale = serializers.BooleanField(help_text="true while the book is being resynchronised")
    depth = serializers.IntegerField()
    levels_available = serializers.DictField(child=serializers.IntegerField())
    depth_capped = serializers.BooleanField(help_text="true when your tier capped the depth you asked for")
    venues = serializers.DictField(required=False, help_text="With breakdown=true: venue → {bids, asks} sizes")


class DeltaSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    type = serializers.ChoiceField(choices=["delta", "snapshot", "stale"], help_text="snapshot = reset: whole book")
    bids = LevelsField(help_text="changed levels; size 0 = removed")
    asks = LevelsField()
    exchange_timestamp = serializers.IntegerField(allow_null=True)
    receive_timestamp = serializers.IntegerField()
    timestamp = serializers.IntegerField()
    reason = serializers.CharField(required=False)


class DeltasSerializer(serializers.Serializer):
    pair = serializers.CharField()
    venue = serializers.CharField()
    since_sequence = serializers.IntegerField()
    next_sequence = serializers.IntegerField(help_text="Pass as since_sequence to continue")
    latest_sequence = serializers.IntegerField()
    has_more = serializers.BooleanField()
    deltas = DeltaSerializer(many=True)


class LatencyQuerySerializer(serializers.Serializer):
    venue = serializers.CharField(required=False, allow_blank=True, help_text="A venue slug; default consolidated")


class LatencyWindowSerializer(serializers.Serializer):
    window_s = serializers.IntegerField(help_text="The window's length in seconds")
    since_ns = serializers.IntegerField(help_text="Start of the oldest slot merged, ns since the epoch")
    count = serializers.IntegerField(help_text="Events (or frames) measured in the window, every process")
    p50_us = serializers.CharField(allow_null=True, help_text="Microseconds, decimal string to the ns")
    p95_us = serializers.CharField(allow_null=True)
    p99_us = serializers.CharField(allow_null=True)
    p999_us = serializers.CharField(allow_null=True, help_text="99.9th percentile")
    max_us = serializers.CharField(allow_null=True)


# The window and stage names ("1m", "exchange_to_receive") are the JSON keys, so the classes are built
# from them (a field named "1m" cannot be written as a class attribute).
LatencyStageSerializer = type(
    "LatencyStageSerializer",
    (serializers.Serializer,),
    {w.name: LatencyWindowSerializer() for w in WINDOWS},
)
LatencyStagesSerializer = type(
    "LatencyStagesSerializer",
    (serializers.Serializer,),
    {stage: LatencyStageSerializer() for stage in STAGE_ORDER},
)


class LatencySerializer(serializers.Serializer):
    pair = serializers.CharField()
    venue = serializers.CharField()
    book = serializers.CharField(help_text="The book measured: venue:PAIR, or consolidated:PAIR")
    as_of_ns = serializers.IntegerField(help_text="The windows end here, ns since the epoch")
    stages = LatencyStagesSerializer(
        help_text="exchange_to_receive, receive_to_publish, publish_to_edge, edge_to_send, publish_to_send"
    )
