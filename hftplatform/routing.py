"""WebSocket URL routes of every app, gathered in one list for the ASGI router, each behind the tier gate."""

from typing import Any

from django.urls import re_path

from apps.microstructure.routing import MICROSTRUCTURE_WS_PATH, microstructure_ws_consumer
from apps.orderbook.routing import ORDERBOOK_WS_PATH, orderbook_ws_consumer
from apps.orders.routing import ORDERS_WS_FEATURE, ORDERS_WS_PATH, order_updates_consumer
from apps.tiers.routing import websocket_urlpatterns as tiers_ws
from apps.tiers.websocket import TierWebSocketMiddleware

websocket_urlpatterns: list[Any] = [
    *tiers_ws,
    re_path(ORDERBOOK_WS_PATH, TierWebSocketMiddleware(orderbook_ws_consumer, feature="json_stream")),
    re_path(ORDERS_WS_PATH, TierWebSocketMiddleware(order_updates_consumer, feature=ORDERS_WS_FEATURE)),
    re_path(MICROSTRUCTURE_WS_PATH, TierWebSocketMiddleware(microstructure_ws_consumer, feature="microstructure")),
]
