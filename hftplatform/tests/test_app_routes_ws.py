"""The platform's WebSocket routing of the microstructure and order-update streams: each behind the tier
gate with the right feature and permission (the apps' own tests rebuild their routes; this is the wiring)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from apps.tiers.tests.conftest import Persona
from hftplatform.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
application = URLRouter(websocket_urlpatterns)


async def first_message_and_close(path: str, persona: Persona) -> tuple[dict[str, Any], int | None]:
    """Connect with the persona's key; the first message, and the close code if the server closes."""
    communicator = WebsocketCommunicator(application, f"{path}?api_key={persona.secret}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    first = orjson.loads(await communicator.receive_from(timeout=5))
    output = await communicator.receive_output(timeout=5) if first.get("type") == "error" else None
    await communicator.disconnect()
    return first, output.get("code") if output and output["type"] == "websocket.close" else None


def test_order_updates_need_a_trade_key(alice: Persona, bob: Persona) -> None:
    refused, code = async_to_sync(first_message_and_close)("/api/hft/ws/orders", bob)  # read-only key
    assert (refused["type"], code) == ("error", 4403)

    subscribed, code = async_to_sync(first_message_and_close)("/api/hft/ws/orders", alice)
    assert (subscribed["type"], subscribed["channel"], code) == ("subscribed", "orders", None)


def test_microstructure_stream_needs_its_tier_feature(alice: Persona, bob: Persona) -> None:
    refused, code = async_to_sync(first_message_and_close)("/api/hft/ws/microstructure/BTC-USDT", bob)  # free tier
    assert (refused["type"], refused["code"], code) == ("error", "feature_not_in_tier", 4403)

    subscribed, code = async_to_sync(first_message_and_close)("/api/hft/ws/microstructure/BTC-USDT", alice)
    assert (subscribed["type"], code) == ("subscribed", None)
