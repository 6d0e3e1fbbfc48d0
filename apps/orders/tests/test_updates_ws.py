"""End to end with the engine's own thread: REST placement, execution, and the private order WebSocket.

The platform's full stack in process: the tier gate and the consumer, the in-process engine client, the
engine thread on the in-process bus, the in-memory channel layer. `transaction=True`: the engine thread
reads what the request committed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import re_path

from apps.orderbook.domain.events import Trade
from apps.orderbook.services.market import get_bus, get_hub
from apps.orders.models import Order
from apps.orders.routing import ORDERS_WS_FEATURE, ORDERS_WS_PATH, order_updates_consumer
from apps.orders.services.engine.runtime import start_runtime, stop_runtime
from apps.orders.services.updates import OrderUpdate, publish_order_updates
from apps.orders.tests.conftest import ASKS, BIDS, GRANTS, publish_book
from apps.orders.tests.test_placement_api import BATCH, order
from apps.tiers.websocket import TierWebSocketMiddleware
from conftest import Persona, make_persona

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
# The route as hftplatform/routing.py wires it (the orders app may not import the platform package).
application = URLRouter(
    [re_path(ORDERS_WS_PATH, TierWebSocketMiddleware(order_updates_consumer, feature=ORDERS_WS_FEATURE))]
)


@pytest.fixture
def running_engine(settings: Any) -> Iterator[None]:
    """The real engine on its own thread, reached through the real in-process client (no test double)."""
    settings.HFT_PAPER_GRANTS = GRANTS
    settings.HFT_PAPER_START_GRACE_S = 0
    settings.HFT_PAPER_DEADMAN_MS = 0  # the watcher is tested on its own
    publish_book(BIDS, ASKS)
    start_runtime(get_hub())
    yield
    stop_runtime()


async def connect(persona: Persona) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {persona.secret}".encode())]
    communicator = WebsocketCommunicator(application, "/api/hft/ws/orders", headers=headers)
    communicator.scope["client"] = ("127.0.0.1", 50000)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(ws: WebsocketCommunicator, timeout: float = 3.0) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await ws.receive_from(timeout))
    return message


def publish_trade(price: str, qty: str, aggressor: str) -> None:
    scale = Decimal(10) ** 8  # the simulated venue's listing: 8 and 8 decimals
    trade = Trade(
        "sim", "BTC-USDT", uuid.uuid4().hex, int(Decimal(price) * scale), int(Decimal(qty) * scale), aggressor, None, 0
    )
    get_bus().publish_trades([trade])


def test_a_placed_order_reaches_its_owner_as_pending_then_filled_with_seq(running_engine: None, alice: Persona) -> None:
    async def scenario() -> None:
        ws = await connect(alice)
        assert (await receive(ws))["type"] == "subscribed"

        response = await sync_to_async(alice.client().post)(
            BATCH, {"orders": [order("take", price="65001", qty="0.1")]}, format="json"
        )
        assert response.json()["results"][0]["status"] == "FILLED"  # the real engine answered in time

        pending, filled = await receive(ws), await receive(ws)
        assert [(m["seq"], m["order"]["status"]) for m in (pending, filled)] == [(1, "PENDING"), (2, "FILLED")]
        assert filled["order"]["client_order_id"] == "take"
        assert [(f["price"], f["quantity"], f["liquidity"]) for f in filled["fills"]] == [("65001", "0.1", "taker")]
        await ws.disconnect()

    async_to_sync(scenario)()


def test_a_resting_order_filled_by_a_later_trade_is_pushed_as_maker(running_engine: None, alice: Persona) -> None:
    async def scenario() -> None:
        ws = await connect(alice)
        await receive(ws)
        response = await sync_to_async(alice.client().post)(
            BATCH, {"orders": [order("rest", price="64990", qty="0.1")]}, format="json"
        )
        assert response.json()["results"][0]["status"] == "NEW"
        assert [(await receive(ws))["order"]["status"] for _ in range(2)] == ["PENDING", "NEW"]

        await sync_to_async(publish_trade)("64980", "1", "sell")  # a sell trades through our bid

        update = await receive(ws)
        assert (update["seq"], update["order"]["status"]) == (3, "FILLED")
        assert [(f["price"], f["liquidity"]) for f in update["fills"]] == [("64990", "maker")]
        await ws.disconnect()

    async_to_sync(scenario)()
    deadline = time.monotonic() + 3
    while Order.objects.get(client_order_id="rest").status != "FILLED" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Order.objects.get(client_order_id="rest").fills.count() == 1


def test_a_customer_receives_only_their_own_updates(running_engine: None, alice: Persona, db: None) -> None:
    bob = make_persona("Bob Trading Desk", "professional", can_trade=True)

    async def scenario() -> None:
        bobs_ws = await connect(bob)
        await receive(bobs_ws)
        await sync_to_async(alice.client().post)(BATCH, {"orders": [order("alice-only")]}, format="json")
        await sync_to_async(bob.client().post)("/api/hft/orders", order("bobs"), format="json")

        first = await receive(bobs_ws)
        assert (first["seq"], first["order"]["client_order_id"]) == (1, "bobs")
        await bobs_ws.disconnect()

    async_to_sync(scenario)()


def test_a_key_without_trade_permission_is_closed_4403(running_engine: None, bob: Persona) -> None:
    async def scenario() -> None:
        ws = await connect(bob)
        error = await receive(ws)
        close = await ws.receive_output()
        assert (error["type"], error["code"]) == ("error", "missing_permission")
        assert (close["type"], close["code"]) == ("websocket.close", 4403)

    async_to_sync(scenario)()


def test_updates_published_from_another_thread_arrive_in_order(alice: Persona) -> None:
    async def scenario() -> None:
        ws = await connect(alice)
        await receive(ws)
        updates = [OrderUpdate(alice.customer.id, {"id": str(i), "status": "NEW"}) for i in range(5)]
        await sync_to_async(publish_order_updates)(updates)

        received = [await receive(ws) for _ in range(5)]
        assert [(m["seq"], m["order"]["id"]) for m in received] == [(i + 1, str(i)) for i in range(5)]
        await ws.send_to(text_data='{"op": "ping", "id": 7}')
        assert await receive(ws) == {"type": "pong", "id": 7, "seq": 5}
        await ws.disconnect()

    async_to_sync(scenario)()
