"""WebSocket authentication through the Channels stack: headers, ?api_key=, close codes, pings."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from apps.tiers.routing import websocket_urlpatterns
from apps.tiers.tests.conftest import Persona, make_persona

# transaction=True: consumers resolve keys in another thread, which must see committed rows;
# serialized_rollback restores the tiers seeded by migration after each flush.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
PATH = "/api/hft/ws/session"


def connect(path: str = PATH, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path, headers=headers or [])
    communicator.scope["client"] = ("127.0.0.1", 50000)
    return communicator


@async_to_sync
async def exchange(communicator: WebsocketCommunicator, *messages: Any) -> list[Any]:
    connected, _ = await communicator.connect()
    assert connected
    received = [await communicator.receive_json_from()]
    for message in messages:
        if isinstance(message, str):
            await communicator.send_to(text_data=message)
        else:
            await communicator.send_json_to(message)
        received.append(await communicator.receive_json_from())
    await communicator.disconnect()
    return received


@async_to_sync
async def refused(communicator: WebsocketCommunicator) -> tuple[dict[str, Any], int]:
    await communicator.connect()
    error = await communicator.receive_json_from()
    close = await communicator.receive_output()
    assert close["type"] == "websocket.close"
    return error, close["code"]


def test_bearer_header_authenticates_and_welcome_names_the_tier(alice: Persona) -> None:
    headers = [(b"authorization", f"Bearer {alice.secret}".encode())]
    [welcome, pong] = exchange(connect(headers=headers), {"op": "ping", "id": 7})
    assert welcome["type"] == "welcome"
    assert welcome["tier"] == "professional"
    assert pong == {"type": "pong", "id": 7}


def test_browsers_may_pass_the_key_in_the_query(alice: Persona) -> None:
    [welcome] = exchange(connect(f"{PATH}?api_key={alice.secret}"))
    assert welcome["customer"] == "Alice Capital"


def test_unknown_and_malformed_messages_get_errors_not_a_disconnect(alice: Persona) -> None:
    headers = [(b"x-api-key", alice.secret.encode())]
    _, unknown, garbage, pong = exchange(connect(headers=headers), {"op": "dance", "id": 1}, "{nope", {"op": "ping"})
    assert unknown["code"] == "unknown_op"
    assert unknown["id"] == 1
    assert garbage["code"] == "invalid_json"
    assert pong["type"] == "pong"


@pytest.mark.parametrize(
    ("path", "code", "error"),
    [
        (PATH, 4401, "missing_api_key"),
        (f"{PATH}?api_key=bad", 4401, "invalid_api_key"),
        (f"{PATH}?api_key=ZZZZZZZZ.{'a' * 32}", 4401, "invalid_api_key"),
        (f"{PATH}?api_key={'k' * 400}", 4431, "api_key_header_too_large"),
    ],
)
def test_bad_keys_close_with_documented_codes(path: str, code: int, error: str) -> None:
    message, close_code = refused(connect(path))
    assert (message["code"], close_code) == (error, code)


def test_ip_outside_allow_list_closes_with_4403() -> None:
    erin = make_persona("Erin", "basic", allowed_cidrs="10.0.0.0/8")
    message, close_code = refused(connect(f"{PATH}?api_key={erin.secret}"))
    assert (message["code"], close_code) == ("ip_not_allowed", 4403)


def test_messages_spend_the_rate_limit_and_close_with_4429(bob: Persona) -> None:
    @async_to_sync
    async def scenario() -> tuple[list[str], int]:
        communicator = connect(f"{PATH}?api_key={bob.secret}")
        await communicator.connect()
        await communicator.receive_json_from()  # welcome (the connect spent one of 5)
        kinds = []
        for i in range(5):
            await communicator.send_json_to({"op": "ping", "id": i})
            message = await communicator.receive_json_from()
            kinds.append(message.get("code", message["type"]))
        close = await communicator.receive_output()
        return kinds, close["code"]

    kinds, close_code = scenario()
    assert kinds == ["pong", "pong", "pong", "pong", "rate_limited"]
    assert close_code == 4429
