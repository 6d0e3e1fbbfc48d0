"""Orders REST routes, mounted under /api/hft/."""

from django.urls import path

from apps.orders import views, views_credentials

urlpatterns = [
    path("orders", views.OrdersView.as_view(), name="orders"),
    path("orders/batch", views.PlaceBatchView.as_view(), name="orders-batch"),
    path("orders/cancel", views.CancelBatchView.as_view(), name="orders-cancel-batch"),
    path("orders/cancel-all", views.CancelAllView.as_view(), name="orders-cancel-all"),
    path("orders/cancel-all-after", views.CancelAllAfterView.as_view(), name="orders-cancel-all-after"),
    path("orders/by-client-id/<str:client_order_id>", views.OrderByClientIdView.as_view(), name="order-by-client-id"),
    path("orders/<uuid:order_id>", views.OrderDetailView.as_view(), name="order-detail"),
    path("balances", views.BalancesView.as_view(), name="balances"),
    path("venue-credentials", views_credentials.VenueCredentialsView.as_view(), name="venue-credentials"),
    path("venue-credentials/<str:venue>", views_credentials.VenueCredentialView.as_view(), name="venue-credential"),
]
