"""Orders WebSocket routes; the platform's routing puts the tier gate in front of them."""

from apps.orders.consumers import OrderUpdatesConsumer

order_updates_consumer = OrderUpdatesConsumer.as_asgi()
ORDERS_WS_PATH = r"^api/hft/ws/orders$"
# Every tier may follow its own orders: the gate's feature is the JSON stream all tiers have; the
# consumer then requires the key's trade permission.
ORDERS_WS_FEATURE = "json_stream"
