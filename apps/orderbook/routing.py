"""Order-book WebSocket routes; the platform's routing puts the tier gate in front of them."""

from apps.orderbook.consumers import OrderBookConsumer

# The pair may be "BTC-USDT" or "BTC/USDT" (slash URL-encoded or not).
orderbook_ws_consumer = OrderBookConsumer.as_asgi()
ORDERBOOK_WS_PATH = r"^api/hft/ws/orderbook/(?P<pair>[^?]+)$"
