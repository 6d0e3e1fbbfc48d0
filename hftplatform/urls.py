"""URL wiring: landing page, admin, OpenAPI schema and docs, and each app's API routes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from hftplatform import metrics, views

urlpatterns = [
    path("", views.LandingView.as_view(), name="landing"),
    path("healthz", views.health, name="healthz"),
    path("metrics", metrics.MetricsView.as_view(), name="metrics"),
    path("admin/login/", views.RateLimitedAdminLoginView.as_view(), name="admin-login"),
    path("admin/", admin.site.urls),
    path("api/schema/", views.public(SpectacularAPIView.as_view()), name="schema"),
    path("api/docs/", views.public(SpectacularSwaggerView.as_view(url_name="schema")), name="swagger-ui"),
    path("api/hft/", include("apps.tiers.urls")),
    path("api/hft/", include("apps.orderbook.urls")),
    path("api/hft/", include("apps.orders.urls")),
    path("api/hft/", include("apps.microstructure.urls")),
]

handler404 = "hftplatform.views.not_found"
handler500 = "hftplatform.views.server_error"
