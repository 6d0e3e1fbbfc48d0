"""WebSocket URL routes of every app, gathered in one list for the ASGI router, each behind the tier gate."""

from typing import Any

from django.urls import re_path

from apps.orderbook.routing import ORDERBOOK_WS_PATH, orderbook_ws_consumer
from apps.tiers.routing import websocket_urlpatterns as tiers_ws
from apps.tiers.websocket import TierWebSocketMiddleware

websocket_urlpatterns: list[Any] = [
    *tiers_ws,
    re_path(ORDERBOOK_WS_PATH, TierWebSocketMiddleware(orderbook_ws_consumer, feature="json_stream")),
]
