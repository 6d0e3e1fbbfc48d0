"""Tiers REST routes, mounted under /api/hft/."""

from django.urls import path

from apps.tiers import views

urlpatterns = [
    path("rate-limits", views.RateLimitStatusView.as_view(), name="rate-limits"),
]
