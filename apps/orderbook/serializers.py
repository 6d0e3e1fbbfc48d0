"""Input and output serializers of the order-book API."""

from __future__ import annotations

from rest_framework import serializers


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
