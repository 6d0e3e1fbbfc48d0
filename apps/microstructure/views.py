"""Microstructure REST: live metrics of a book and the history of one metric's bars (tier feature `microstructure`)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.microstructure.serializers import (
    HistoryQuerySerializer,
    HistorySerializer,
    MetricsQuerySerializer,
    MetricsSerializer,
)
from apps.microstructure.services.reads import live_metrics, metric_history, resolve_target
from apps.orderbook.drf import validated

PAIR = OpenApiParameter("pair", str, OpenApiParameter.PATH, description="BTC-USD or BTC/USD")


class MicrostructureView(APIView):
    required_feature = "microstructure"

    @extend_schema(
        parameters=[PAIR, MetricsQuerySerializer], responses=MetricsSerializer, operation_id="microstructure"
    )
    def get(self, request: Request, pair: str) -> Response:
        """Every metric over 10 s, 1 m and 5 m (or the `window` asked), from this process's live windows."""
        data = validated(MetricsQuerySerializer(data=request.query_params))
        return Response(live_metrics(resolve_target(pair, data.get("venue"), data.get("window"))))


class MicrostructureHistoryView(APIView):
    required_feature = "microstructure"

    @extend_schema(
        parameters=[PAIR, HistoryQuerySerializer], responses=HistorySerializer, operation_id="microstructure_history"
    )
    def get(self, request: Request, pair: str) -> Response:
        """One metric's 1 s or 1 m bars in [from, to], oldest first; at most `limit` (1,000 by default and at
        most HFT_MICRO_HISTORY_MAX_ROWS), with `next_from_ns` to page on."""
        data = validated(HistoryQuerySerializer(data=request.query_params))
        body = metric_history(
            pair, data.get("venue"), data["metric"], data["interval"], data.get("from"), data.get("to"), data["limit"]
        )
        return Response(body)
