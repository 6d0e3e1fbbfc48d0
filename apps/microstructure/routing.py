"""Microstructure WebSocket route; the platform's routing puts the tier gate (feature `microstructure`) in front."""

from apps.microstructure.consumers import MicrostructureConsumer

microstructure_ws_consumer = MicrostructureConsumer.as_asgi()
MICROSTRUCTURE_WS_PATH = r"^api/hft/ws/microstructure/(?P<pair>[^?]+)$"
