"""The project's URLs plus one trivial endpoint served bare and behind the default API-key auth + rate limit.

Both views share one body, so the only difference the benchmark sees is authentication, permission checks
and the rate-limit middleware's work.
"""

from __future__ import annotations

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class AuthOkView(APIView):
    """The project's defaults: API key authentication (spends the rate limit) and the key permission check."""

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class BareOkView(AuthOkView):
    authentication_classes = []
    permission_classes = [AllowAny]


urlpatterns = [
    path("bench/bare", BareOkView.as_view(), name="bench-bare"),
    path("bench/auth", AuthOkView.as_view(), name="bench-auth"),
    path("", include("hftplatform.urls")),
]

handler404 = "hftplatform.views.not_found"
handler500 = "hftplatform.views.server_error"
