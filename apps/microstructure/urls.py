"""Microstructure REST routes, mounted under /api/hft/ (history first: a pair may contain a slash)."""

from django.urls import path

from apps.microstructure import views

urlpatterns = [
    path(
        "microstructure/<path:pair>/history", views.MicrostructureHistoryView.as_view(), name="microstructure-history"
    ),
    path("microstructure/<path:pair>", views.MicrostructureView.as_view(), name="microstructure"),
]
