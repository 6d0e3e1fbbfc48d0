"""Test-only routes: views that demand a tier feature or the trade permission, as later apps' views will."""

from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class MicrostructureProbeView(APIView):
    required_feature = "microstructure"

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class TradeProbeView(APIView):
    required_key_permission = "trade"

    def post(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("", include("hftplatform.urls")),
    path("probe/microstructure", MicrostructureProbeView.as_view()),
    path("probe/trade", TradeProbeView.as_view()),
]
