"""Order-book REST: instruments, book snapshots and sequenced deltas (tier-checked by the default classes)."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orderbook.drf import validated
from apps.orderbook.serializers import (
    DeltasQuerySerializer,
    DeltasSerializer,
    InstrumentSerializer,
    LatencyQuerySerializer,
    LatencySerializer,
    SnapshotQuerySerializer,
    SnapshotSerializer,
)
from apps.orderbook.services.latency import latency_report
from apps.orderbook.services.reads import book_deltas, book_snapshot, catalogue, resolve_book

DEFAULT_DEPTH = 100
PAIR = OpenApiParameter("pair", str, OpenApiParameter.PATH, description="BTC-USD or BTC/USD")


def tier_limit(request: Request, name: str) -> Any:
    """A limit of the caller's tier (the principal is set by the platform's authentication)."""
    return getattr(cast(Any, request.user).tier, name)


class ListInstrumentsView(APIView):
    @extend_schema(responses=InstrumentSerializer(many=True), operation_id="instruments")
    def get(self, request: Request) -> Response:
        """Every instrument with its listings, precision, and the id the binary protocol uses."""
        return Response(list(catalogue().instruments.values()))


class BookSnapshotView(APIView):
    required_feature = "snapshots"

    @extend_schema(parameters=[PAIR, SnapshotQuerySerializer], responses=SnapshotSerializer, operation_id="snapshot")
    def get(self, request: Request, pair: str) -> Response:
        """The book now, from this process's replica; depth is capped by your tier."""
        query = validated(SnapshotQuerySerializer(data=request.query_params))
        cap = tier_limit(request, "max_book_depth")
        requested = query.get("depth", DEFAULT_DEPTH if cap is None else min(cap, DEFAULT_DEPTH))
        depth = requested if cap is None else min(requested, cap)
        body = book_snapshot(pair, query.get("venue"), depth, breakdown=query["breakdown"])
        body["depth_capped"] = depth < requested
        return Response(body)


class BookDeltasView(APIView):
    required_feature = "delta_history"

    @extend_schema(parameters=[PAIR, DeltasQuerySerializer], responses=DeltasSerializer, operation_id="deltas")
    def get(self, request: Request, pair: str) -> Response:
        """Deltas since_sequence+1, +2, ... in order (resets included as `snapshot`); 410 past your history."""
        data = validated(DeltasQuerySerializer(data=request.query_params))
        return Response(
            book_deltas(
                pair,
                data.get("venue"),
                data["since_sequence"],
                data["limit"],
                tier_limit(request, "delta_history_length"),
            )
        )


class BookLatencyView(APIView):
    required_feature = "snapshots"

    @extend_schema(parameters=[PAIR, LatencyQuerySerializer], responses=LatencySerializer, operation_id="latency")
    def get(self, request: Request, pair: str) -> Response:
        """Latency per stage over 1 m, 5 m and 1 h, every web process merged: count, p50, p95, p99, p99.9 and
        max in microseconds (decimal strings to the ns; HDR histograms, within 0.1%, never below)."""
        query = validated(LatencyQuerySerializer(data=request.query_params))
        symbol, label, book = resolve_book(pair, query.get("venue"))
        return Response(latency_report(symbol, label, book))
