"""Tiers REST: the caller's tier, limits and live usage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.tiers.domain.features import Feature
from apps.tiers.serializers import ErrorSerializer, RateLimitStatusSerializer
from apps.tiers.services.auth import Admission

ERRORS = {401: ErrorSerializer, 403: ErrorSerializer, 429: ErrorSerializer}


class RateLimitStatusView(APIView):
    @extend_schema(responses={200: RateLimitStatusSerializer, **ERRORS}, operation_id="rate_limits")
    def get(self, request: Request) -> Response:
        """Your tier, its limits and features, and your live usage in every window (this call included)."""
        admission = cast(Admission, request.auth)
        tier = admission.principal.tier
        decision = admission.limit.decision
        usage: dict[str, Any] = {
            "burst": {
                "limit": decision.burst_limit,
                "remaining": decision.burst_remaining,
                "full_in_ms": decision.burst_full_in_ms,
            }
        }
        for window in decision.windows:
            usage[window.name] = {
                "used": window.used,
                "limit": window.limit,
                "remaining": window.remaining,
                "resets_at": datetime.fromtimestamp(window.reset_ms / 1000, UTC),
            }
        body = {
            "tier": tier.slug,
            "tier_name": tier.name,
            "customer": admission.principal.customer_name,
            "rate_limits": {
                "requests_per_second": Decimal(tier.limits.rate_milli_per_s) / 1000,
                "burst": tier.limits.burst,
                "requests_per_minute": tier.limits.per_minute,
                "requests_per_hour": tier.limits.per_hour,
                "requests_per_day": tier.limits.per_day,
            },
            "current_usage": usage,
            "limits": {
                "max_ws_connections": tier.max_ws_connections,
                "max_subscriptions_per_connection": tier.max_subscriptions_per_connection,
                "max_book_depth": tier.max_book_depth,
                "delta_history_length": tier.delta_history_length,
                "max_batch_size": tier.max_batch_size,
            },
            "latency_sla_ms": tier.latency_sla_p95_ms,
            "features": sorted(tier.features),
            "co_location_ready": tier.has_feature(Feature.CO_LOCATION),
            "degraded": admission.limit.is_degraded,
        }
        return Response(RateLimitStatusSerializer(body).data)
