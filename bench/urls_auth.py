"""The project's URLs plus one trivial endpoint served bare, behind the default API-key auth + rate limit,
and with the rate limiter's Redis round trip alone.

The three views share one body, so the only differences the benchmark sees are authentication,
permission checks and the rate-limit middleware's work, or (`/bench/trip`) the one Redis round trip
that the rate limit requires and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.tiers.domain.ratelimit import Limits
from apps.tiers.services.ratelimit import limiter
from bench.auth_ratelimit import TIER_SLUG  # the tier it provisions: limits the run cannot reach

TRIP_PATH = "/bench/trip"


class AuthOkView(APIView):
    """The project's defaults: API key authentication (spends the rate limit) and the key permission check."""

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class BareOkView(AuthOkView):
    authentication_classes = []
    permission_classes = [AllowAny]


class RoundTripOnlyMiddleware:
    """For `/bench/trip` only: the rate-limit script's one Redis round trip, and nothing else.

    It sits where `RateLimitHeadersMiddleware` does and does what that middleware's early admission does
    with the round trip (sent as the request enters the chain, read as it leaves), but checks no key, adds
    no header and meters nothing. What it costs over bare is the floor of any design that spends from a
    shared Redis bucket once per request. Anything but an allowed answer from Redis is a 503, so the
    benchmark never mistakes the memory fallback for the round trip.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._account: tuple[int, Limits] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != TRIP_PATH:
            return self.get_response(request)
        customer_id, limits = self._account or self._load_account()
        pending = limiter.begin(customer_id, limits)
        response = self.get_response(request)
        result = pending.result()
        if result.auth_generation is None or not result.decision.is_allowed:
            return HttpResponse(status=503)
        return response

    def _load_account(self) -> tuple[int, Limits]:
        from apps.tiers.models import Customer
        from apps.tiers.services.catalog import tier_info

        customer = Customer.objects.select_related("tier").filter(tier__slug=TIER_SLUG).first()
        if customer is None:
            raise RuntimeError(f"no customer on tier {TIER_SLUG!r}: run bench/auth_ratelimit.py")
        self._account = (customer.pk, tier_info(customer.tier).limits)
        return self._account


urlpatterns = [
    path("bench/bare", BareOkView.as_view(), name="bench-bare"),
    path("bench/auth", AuthOkView.as_view(), name="bench-auth"),
    path(TRIP_PATH.lstrip("/"), BareOkView.as_view(), name="bench-trip"),
    path("", include("hftplatform.urls")),
]

handler404 = "hftplatform.views.not_found"
handler500 = "hftplatform.views.server_error"
