"""Order-book REST routes, mounted under /api/hft/."""

from django.urls import path

from apps.orderbook import views

urlpatterns = [
    path("instruments", views.ListInstrumentsView.as_view(), name="instruments"),
    path("orderbook/<path:pair>/snapshot", views.BookSnapshotView.as_view(), name="book-snapshot"),
    path("orderbook/<path:pair>/deltas", views.BookDeltasView.as_view(), name="book-deltas"),
    path("latency/<path:pair>", views.BookLatencyView.as_view(), name="book-latency"),
]
