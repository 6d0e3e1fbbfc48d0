"""Orders REST: placement (one or a batch), reads, cancels, the dead man's switch and balances.

Views parse, call one service, render. Trading needs the key's `trade` permission; batches also the
tier's `batch_orders` feature; reads need `read`. Every lookup is scoped to the caller's customer.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orderbook.drf import validated
from apps.orderbook.services.feeds import normalise_symbol
from apps.orders.domain.types import OrderStatus, Reason
from apps.orders.exceptions import OrderNotFound
from apps.orders.serializers import (
    CLIENT_ORDER_ID,
    BalanceOutSerializer,
    BatchInSerializer,
    BatchOutSerializer,
    CancelAllAfterInSerializer,
    CancelAllInSerializer,
    CancelAllOutSerializer,
    CancelBatchInSerializer,
    CancelBatchOutSerializer,
    DeadMansSwitchOutSerializer,
    OrderDetailOutSerializer,
    OrderInSerializer,
    OrderListQuerySerializer,
    OrderOutSerializer,
    OrderPageOutSerializer,
    PlacementResultOutSerializer,
    PlaceOrderInSerializer,
)
from apps.orders.services import queries
from apps.orders.services.cancels import CancelResult, cancel_all_orders, cancel_order, cancel_orders
from apps.orders.services.deadman import arm_switch
from apps.orders.services.placement import PlacementResult, place_orders
from apps.orders.services.updates import render_fill, render_order, symbols_by_id
from apps.tiers.services.auth import Principal

ORDER_ID = OpenApiParameter("order_id", str, OpenApiParameter.PATH, description="The order's id (UUID)")


def principal_of(request: Request) -> Principal:
    return cast(Principal, request.user)


def render_result(result: PlacementResult, symbols: dict[int, str]) -> dict[str, Any]:
    order = result.order
    return {
        "client_order_id": result.client_order_id,
        "status": str(result.status),
        "reason": None if result.reason is None else str(result.reason),
        "duplicate": result.is_duplicate,
        "order": None if order is None else render_order(order, symbols.get(order.instrument_id)),
        "fills": [render_fill(fill) for fill in result.fills],
    }


def render_cancel(result: CancelResult) -> dict[str, Any]:
    return {
        "order_id": result.order_id,
        "canceled": result.is_canceled,
        "error": result.error,
        "order": None if result.order is None else render_order(result.order),
    }


def generated_id() -> str:
    return f"auto-{uuid.uuid4().hex}"


class PlaceBatchView(APIView):
    required_key_permission = "trade"
    required_feature = "batch_orders"

    @extend_schema(request=BatchInSerializer, responses=BatchOutSerializer, operation_id="orders_batch")
    def post(self, request: Request) -> Response:
        """Place up to your tier's batch size of orders; one result per order, in request order."""
        data = validated(BatchInSerializer(data=request.data))
        parse = OrderInSerializer()
        orders = [parse.to_request(item, generated_id()) for item in data["orders"]]
        results = place_orders(
            principal_of(request), orders, atomic=data["atomic"], validate_only=data["validate_only"]
        )
        symbols = symbols_by_id()
        rejected = sum(1 for r in results if not r.is_accepted)
        return Response(
            {
                "results": [render_result(r, symbols) for r in results],
                "accepted": len(results) - rejected,
                "rejected": rejected,
                "atomic": data["atomic"],
                "validate_only": data["validate_only"],
            }
        )


class OrdersView(APIView):
    """POST places one order (trade); GET lists your orders (read)."""

    def get_permissions(self) -> Any:
        self.required_key_permission = "trade" if self.request.method == "POST" else "read"
        return super().get_permissions()

    @extend_schema(
        request=PlaceOrderInSerializer,
        responses={201: PlacementResultOutSerializer, 200: PlacementResultOutSerializer},
        operation_id="orders_place",
    )
    def post(self, request: Request) -> Response:
        """Place one order: 201 placed, 200 a retry of a known client_order_id (or validate_only), 422 rejected."""
        body = PlaceOrderInSerializer(data=request.data)
        data = validated(body)
        order = body.to_request(data, generated_id())
        validate_only = data["validate_only"]
        [result] = place_orders(principal_of(request), [order], validate_only=validate_only)
        rendered = render_result(result, symbols_by_id())
        if result.status == OrderStatus.REJECTED and not result.is_duplicate:
            # Not an exception: the order is recorded (REJECTED) and the body carries it, in the error shape.
            refusal = {"code": "order_rejected", "message": f"Order rejected: {result.reason}.", "detail": rendered}
            return Response(refusal, status=422)
        return Response(rendered, status=200 if result.is_duplicate or validate_only else 201)

    @extend_schema(parameters=[OrderListQuerySerializer], responses=OrderPageOutSerializer, operation_id="orders_list")
    def get(self, request: Request) -> Response:
        """Your orders, newest first; filter by status (or OPEN) and pair; page with next_cursor."""
        data = validated(OrderListQuerySerializer(data=request.query_params))
        page = queries.list_orders(
            principal_of(request).customer_id,
            status=data.get("status"),
            pair=data.get("pair"),
            limit=data["limit"],
            cursor=data.get("cursor"),
        )
        return Response(queries.render_page(page))


class OrderDetailView(APIView):
    """GET one of your orders with its fills (read); DELETE cancels it (trade)."""

    def get_permissions(self) -> Any:
        self.required_key_permission = "trade" if self.request.method == "DELETE" else "read"
        return super().get_permissions()

    @extend_schema(parameters=[ORDER_ID], responses=OrderDetailOutSerializer, operation_id="orders_get")
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        """One of your orders, with its fills; 404 for an unknown id or another customer's."""
        order = queries.access_order(principal_of(request).customer_id, order_id)
        return Response(queries.order_detail(order))

    @extend_schema(parameters=[ORDER_ID], responses=OrderOutSerializer, operation_id="orders_cancel")
    def delete(self, request: Request, order_id: uuid.UUID) -> Response:
        """Cancel an open order: its state after (CANCELED, or FILLED if it filled first); 409 if already final."""
        order = cancel_order(principal_of(request).customer_id, order_id)
        return Response(render_order(order))


class OrderByClientIdView(APIView):
    @extend_schema(responses=OrderDetailOutSerializer, operation_id="orders_get_by_client_id")
    def get(self, request: Request, client_order_id: str) -> Response:
        """One of your orders by your client_order_id, with its fills."""
        if not re.fullmatch(CLIENT_ORDER_ID, client_order_id):
            # No order can carry it; and PostgreSQL refuses a NUL in a query outright (a 500, not a 404).
            raise OrderNotFound("No such order.", detail={"client_order_id": client_order_id})
        order = queries.access_order_by_client_id(principal_of(request).customer_id, client_order_id)
        return Response(queries.order_detail(order))


class CancelBatchView(APIView):
    required_key_permission = "trade"

    @extend_schema(
        request=CancelBatchInSerializer, responses=CancelBatchOutSerializer, operation_id="orders_cancel_batch"
    )
    def post(self, request: Request) -> Response:
        """Cancel several orders by id; per id: canceled, or order_not_found / order_not_open."""
        body = validated(CancelBatchInSerializer(data=request.data))
        results = cancel_orders(principal_of(request).customer_id, body["order_ids"])
        return Response({"results": [render_cancel(r) for r in results]})


class CancelAllView(APIView):
    required_key_permission = "trade"

    @extend_schema(request=CancelAllInSerializer, responses=CancelAllOutSerializer, operation_id="orders_cancel_all")
    def post(self, request: Request) -> Response:
        """Cancel every open order (of one pair if given)."""
        pair = validated(CancelAllInSerializer(data=request.data)).get("pair")
        count = cancel_all_orders(
            principal_of(request).customer_id, Reason.CANCELED_BY_CUSTOMER, normalise_symbol(pair) if pair else None
        )
        return Response({"cancel_requested": count})


class CancelAllAfterView(APIView):
    required_key_permission = "trade"

    @extend_schema(
        request=CancelAllAfterInSerializer,
        responses=DeadMansSwitchOutSerializer,
        operation_id="orders_cancel_all_after",
    )
    def post(self, request: Request) -> Response:
        """Dead man's switch: cancel all open orders unless called again within timeout_ms; 0 disarms."""
        timeout_ms = validated(CancelAllAfterInSerializer(data=request.data))["timeout_ms"]
        switch = arm_switch(principal_of(request).customer_id, timeout_ms, timezone.now())
        fires_at = switch.fires_at
        return Response(
            {
                "armed": fires_at is not None,
                "timeout_ms": timeout_ms,
                "fires_at": None if fires_at is None else fires_at.isoformat(),
            }
        )


class BalancesView(APIView):
    @extend_schema(responses=BalanceOutSerializer(many=True), operation_id="balances")
    def get(self, request: Request) -> Response:
        """Your paper balances per currency: available, locked behind open orders, total."""
        return Response(queries.customer_balances(principal_of(request).customer_id))
