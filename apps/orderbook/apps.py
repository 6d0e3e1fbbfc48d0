"""App config for orderbook."""

from django.apps import AppConfig


class OrderbookConfig(AppConfig):
    name = "apps.orderbook"
    label = "orderbook"
