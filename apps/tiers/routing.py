"""Tiers WebSocket routes."""

from django.urls import path

from apps.tiers.consumers import SessionConsumer
from apps.tiers.websocket import APIKeyWebSocketMiddleware

websocket_urlpatterns = [
    path("api/hft/ws/session", APIKeyWebSocketMiddleware(SessionConsumer.as_asgi())),
]
