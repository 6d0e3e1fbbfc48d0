"""WebSocket URL routes of every app, gathered in one list for the ASGI router."""

from typing import Any

from apps.tiers.routing import websocket_urlpatterns as tiers_ws

websocket_urlpatterns: list[Any] = [*tiers_ws]
