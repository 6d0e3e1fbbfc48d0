"""Project-level pages: the landing page, health check, rate-limited admin login and JSON error pages."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.http import require_safe
from django.views.generic import TemplateView
from django_ratelimit.decorators import ratelimit

from hftplatform.exceptions import error_body


def public_rate(group: str, request: HttpRequest) -> str:
    return str(settings.HFT_PUBLIC_RATE)


def login_rate(group: str, request: HttpRequest) -> str:
    return str(settings.HFT_LOGIN_RATE)


def public(view: Any) -> Any:
    """Guard an unauthenticated view with django-ratelimit, per client IP."""
    return ratelimit(group="public", key="ip", rate=public_rate, block=True)(view)


@method_decorator(ratelimit(group="public", key="ip", rate=public_rate, block=True), name="get")
class LandingView(TemplateView):
    template_name = "landing.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from apps.tiers.services.catalog import list_public_tiers

        context = super().get_context_data(**kwargs)
        context["mode"] = "production" if settings.REDIS_URL else "embedded"
        context["database"] = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        context["redis"] = bool(settings.REDIS_URL)
        context["tiers"] = list_public_tiers()
        return context


@require_safe
def health(request: HttpRequest) -> JsonResponse:
    # A function, not a class-based view: Django binds `head = get` on each class-based view instance, a
    # reference cycle per request, and load balancers poll this path all the time.
    return JsonResponse({"status": "ok"})


class RateLimitedAdminLoginView(View):
    """Admin login behind a per-IP limit on POST, so passwords cannot be guessed at speed."""

    @method_decorator(ratelimit(group="admin-login", key="ip", rate=login_rate, method="POST", block=True))
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return admin.site.login(request)


def ratelimited(request: HttpRequest, exception: Exception) -> HttpResponse:
    body = error_body("ip_rate_limited", "Too many requests from this address; slow down.")
    response = JsonResponse(body, status=429)
    response["Retry-After"] = "60"
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return JsonResponse(error_body("internal_error", "Internal server error."), status=500)
