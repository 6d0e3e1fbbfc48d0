"""Views that report where Django ran them, for the HTTP handler's tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orderbook.drf import validated
from hftplatform.views import health


class ThreadProbeMiddleware:
    """Notes which thread ran the middleware chain."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.probe_thread = threading.get_ident()
        return self.get_response(request)


# Set by tests: a barrier every /meet request waits at, and an event /hold waits for.
meeting: dict[str, threading.Barrier] = {}
release = threading.Event()
held = threading.Event()


def where(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "thread": threading.get_ident(),
            "thread_name": threading.current_thread().name,
            "middleware_thread": getattr(request, "probe_thread", None),
        }
    )


def meet(request: HttpRequest) -> JsonResponse:
    meeting["barrier"].wait(timeout=10)  # raises BrokenBarrierError unless all arrive together
    return JsonResponse({"thread": threading.get_ident()})


def hold(request: HttpRequest) -> JsonResponse:
    held.set()
    release.wait(timeout=10)
    return JsonResponse({"thread": threading.get_ident()})


def database(request: HttpRequest) -> JsonResponse:
    was_open = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (one,) = cursor.fetchone()
    # Django never closes an in-memory SQLite database's connection: closing would drop the database.
    keeps_connection = connection.vendor == "sqlite" and connection.is_in_memory_db()
    return JsonResponse(
        {"thread": threading.get_ident(), "one": one, "was_open": was_open, "keeps_connection": keeps_connection}
    )


class DRFView(APIView):
    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"thread": threading.get_ident()})


class ItemSerializer(serializers.Serializer):
    n = serializers.IntegerField()


class QuerySerializer(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField())
    limit = serializers.IntegerField(default=10)


class PageSerializer(serializers.Serializer):
    items = ItemSerializer(many=True)
    names = serializers.ListField(child=serializers.CharField())


class DRFSerializersView(DRFView):
    """Validates input with a serializer (`validated`) and answers with another's `data`, nested and listed."""

    def get(self, request: Request) -> Response:
        query = validated(QuerySerializer(data={"tags": ["a", "b"], "limit": "5"}))
        return Response(PageSerializer({"items": [{"n": query["limit"]}], "names": query["tags"]}).data)


def boom(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("a view failed")


urlpatterns = [
    path("where", where),
    path("meet", meet),
    path("hold", hold),
    path("database", database),
    path("boom", boom),
    path("drf", DRFView.as_view()),
    path("drf-serializers", DRFSerializersView.as_view()),
    path("healthz", health),
]

handler500 = "hftplatform.views.server_error"
