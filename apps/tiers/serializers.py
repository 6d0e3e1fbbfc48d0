"""Output serializers of the tiers API (they shape the OpenAPI schema as much as the responses)."""

from __future__ import annotations

from rest_framework import serializers


class RateLimitsSerializer(serializers.Serializer):
    requests_per_second = serializers.DecimalField(max_digits=10, decimal_places=3, coerce_to_string=True)
    burst = serializers.IntegerField()
    requests_per_minute = serializers.IntegerField()
    requests_per_hour = serializers.IntegerField()
    requests_per_day = serializers.IntegerField()


class WindowUsageSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    limit = serializers.IntegerField()
    remaining = serializers.IntegerField()
    resets_at = serializers.DateTimeField()


class BurstUsageSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    remaining = serializers.IntegerField()
    full_in_ms = serializers.IntegerField()


class CurrentUsageSerializer(serializers.Serializer):
    burst = BurstUsageSerializer()
    minute = WindowUsageSerializer()
    hour = WindowUsageSerializer()
    day = WindowUsageSerializer()


class TierLimitsSerializer(serializers.Serializer):
    max_ws_connections = serializers.IntegerField()
    max_subscriptions_per_connection = serializers.IntegerField()
    max_book_depth = serializers.IntegerField(allow_null=True, help_text="null: full depth")
    delta_history_length = serializers.IntegerField()
    max_batch_size = serializers.IntegerField(allow_null=True, help_text="null: batch orders not included")


class RateLimitStatusSerializer(serializers.Serializer):
    tier = serializers.CharField()
    tier_name = serializers.CharField()
    customer = serializers.CharField()
    rate_limits = RateLimitsSerializer()
    current_usage = CurrentUsageSerializer()
    limits = TierLimitsSerializer()
    latency_sla_ms = serializers.IntegerField(allow_null=True)
    features = serializers.ListField(child=serializers.CharField())
    co_location_ready = serializers.BooleanField()
    degraded = serializers.BooleanField(help_text="true while Redis is unreachable and limits are per process")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    detail = serializers.JSONField(allow_null=True)
