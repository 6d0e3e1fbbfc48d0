"""Customers' venue credentials over the API: stored encrypted, listed masked, scoped to their owner, usable live."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from apps.orderbook.models import Instrument
from apps.orders.models import Fill, Order, VenueCredential
from apps.orders.services.credentials import decrypt_secret
from apps.orders.tests import venue_stub
from apps.orders.tests.conftest import SteppedEngineClient
from apps.orders.tests.test_live_end_to_end import settle
from apps.orders.tests.venue_stub import ALICE_API_KEY, ALICE_API_SECRET, BinanceStub
from conftest import Persona

CREDENTIALS = "/api/hft/venue-credentials"
BINANCE = f"{CREDENTIALS}/binance"


def put(persona: Persona, venue: str = "binance", **body: Any) -> Any:
    payload = {"api_key": ALICE_API_KEY, "api_secret": ALICE_API_SECRET, **body}
    return persona.client().put(f"{CREDENTIALS}/{venue}", payload, format="json")


def stored_secret_column(credential_id: int) -> str:
    with connection.cursor() as cursor:
        table = VenueCredential._meta.db_table
        cursor.execute(f"SELECT secret_encrypted FROM {table} WHERE id = %s", [credential_id])  # noqa: S608
        (stored,) = cursor.fetchone()
    return str(stored)


@pytest.mark.django_db
def test_put_creates_a_credential_and_never_echoes_the_secret(alice: Persona) -> None:
    response = put(alice)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["venue"] == "binance"
    assert body["api_key"] == "****-key"
    assert {"created_at", "updated_at"} <= body.keys()
    assert ALICE_API_SECRET not in response.content.decode()
    assert ALICE_API_KEY not in response.content.decode()
    credential = VenueCredential.objects.get(customer=alice.customer, venue="binance")
    assert (credential.api_key, decrypt_secret(credential.secret_encrypted)) == (ALICE_API_KEY, ALICE_API_SECRET)


@pytest.mark.django_db
def test_put_again_replaces_the_key_and_secret(alice: Persona) -> None:
    first = put(alice).json()

    response = put(alice, api_key="alice-new-key-7777", api_secret="new-secret-abc")

    assert response.status_code == 200, response.content
    assert response.json()["api_key"] == "****7777"
    assert response.json()["created_at"] == first["created_at"]
    assert response.json()["updated_at"] >= first["updated_at"]
    [credential] = VenueCredential.objects.filter(customer=alice.customer)
    assert (credential.api_key, decrypt_secret(credential.secret_encrypted)) == ("alice-new-key-7777", "new-secret-abc")


@pytest.mark.django_db
def test_the_database_column_never_holds_the_plaintext_secret(alice: Persona) -> None:
    put(alice)
    credential = VenueCredential.objects.get(customer=alice.customer)

    stored = stored_secret_column(credential.pk)

    assert ALICE_API_SECRET not in stored
    assert stored.startswith("gAAAA")  # a Fernet token


@pytest.mark.django_db
def test_get_lists_the_credentials_with_the_api_key_masked(alice: Persona) -> None:
    put(alice, "binance_us", api_key="us-key-0123456789")
    put(alice)

    response = alice.client().get(CREDENTIALS)

    assert response.status_code == 200
    listed = response.json()
    assert [(c["venue"], c["api_key"]) for c in listed] == [("binance", "****-key"), ("binance_us", "****6789")]
    assert ALICE_API_KEY not in response.content.decode()
    assert ALICE_API_SECRET not in response.content.decode()
    assert set(listed[0]) == {"venue", "api_key", "created_at", "updated_at"}


@pytest.mark.django_db
def test_a_short_api_key_is_masked_whole(alice: Persona) -> None:
    assert put(alice, api_key="abcd1234").json()["api_key"] == "****"


@pytest.mark.django_db
def test_delete_forgets_the_credential_and_a_second_delete_is_404(alice: Persona) -> None:
    put(alice)

    first = alice.client().delete(BINANCE)
    second = alice.client().delete(BINANCE)

    assert first.status_code == 204
    assert not VenueCredential.objects.filter(customer=alice.customer).exists()
    assert (second.status_code, second.json()["code"]) == (404, "venue_credential_not_found")


@pytest.mark.django_db
def test_deleting_a_venue_name_with_a_nul_is_a_404_not_a_500(alice: Persona) -> None:
    # PostgreSQL refuses a NUL in a query (a 500 there; SQLite let it through)
    response = alice.client().delete(f"{CREDENTIALS}/bin%00ance")

    assert (response.status_code, response.json()["code"]) == (404, "venue_credential_not_found")


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "is_refused"), [("NEW", True), ("UNKNOWN", True), ("FILLED", False)])
def test_delete_is_refused_while_open_orders_on_the_venue_need_it(
    alice: Persona, status: str, is_refused: bool
) -> None:
    put(alice)
    Order.objects.create(
        customer=alice.customer,
        client_order_id="live-open",
        instrument=Instrument.objects.get(symbol="BTC-USDT"),
        venue="binance",
        side="buy",
        type="limit",
        price=Decimal("64000"),
        quantity=Decimal("0.1"),
        status=status,
    )

    response = alice.client().delete(BINANCE)

    if is_refused:
        assert (response.status_code, response.json()["code"]) == (409, "venue_credential_in_use")
        assert response.json()["detail"] == {"open_orders": 1}
    else:
        assert response.status_code == 204
    assert VenueCredential.objects.filter(customer=alice.customer).exists() is is_refused


@pytest.mark.django_db
def test_bob_neither_sees_nor_deletes_alices_credential(alice: Persona, bob_trader: Persona) -> None:
    put(alice)
    put(bob_trader, "binance_us", api_key="bob-key-44445555")

    listed = bob_trader.client().get(CREDENTIALS).json()
    deleted = bob_trader.client().delete(BINANCE)

    assert [(c["venue"], c["api_key"]) for c in listed] == [("binance_us", "****5555")]
    assert (deleted.status_code, deleted.json()["code"]) == (404, "venue_credential_not_found")
    assert VenueCredential.objects.filter(customer=alice.customer, venue="binance").exists()


@pytest.mark.django_db
def test_bobs_put_on_the_same_venue_leaves_alices_credential_alone(alice: Persona, bob_trader: Persona) -> None:
    put(alice)

    assert put(bob_trader, api_key="bob-key-44445555", api_secret="bob-secret").status_code == 201

    credential = VenueCredential.objects.get(customer=alice.customer, venue="binance")
    assert (credential.api_key, decrypt_secret(credential.secret_encrypted)) == (ALICE_API_KEY, ALICE_API_SECRET)


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_a_read_only_key_is_refused(bob: Persona, method: str) -> None:
    """Bob's key reads market data only: a credential lets us trade for him, so every endpoint wants `trade`."""
    client = bob.client()
    if method == "get":
        response = client.get(CREDENTIALS)
    elif method == "put":
        response = put(bob)
    else:
        response = client.delete(BINANCE)

    assert (response.status_code, response.json()["code"]) == (403, "missing_permission")
    assert not VenueCredential.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("venue", ["paper", "kraken", "BINANCE"])
def test_a_venue_without_a_live_adapter_is_unknown(alice: Persona, venue: str) -> None:
    response = put(alice, venue)

    assert (response.status_code, response.json()["code"]) == (404, "unknown_venue")
    assert "binance" in response.json()["detail"]
    assert not VenueCredential.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"api_secret": "s3cret"}, "api_key"),
        ({"api_key": "key-123456789"}, "api_secret"),
        ({"api_key": "", "api_secret": "s3cret"}, "api_key"),
        ({"api_key": "key with space", "api_secret": "s3cret"}, "api_key"),
        ({"api_key": "key-123456789", "api_secret": "s3cret\n"}, "api_secret"),
        ({"api_key": "k" * 257, "api_secret": "s3cret"}, "api_key"),
        ({"api_key": "key-123456789", "api_secret": None}, "api_secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(alice: Persona, payload: dict[str, Any], field: str) -> None:
    response = alice.client().put(BINANCE, payload, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["detail"]
    assert not VenueCredential.objects.exists()


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_a_400(alice: Persona) -> None:
    response = alice.client().put(BINANCE, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.fixture
def stub(settings: Any) -> Iterator[BinanceStub]:
    server = venue_stub.serve_binance(settings, timeout_s=0.5)
    yield server
    server.stop()


# The live bridge reads the credential on its own thread: rows must be committed (transaction=True).
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_credentials_stored_over_the_api_fill_a_live_order_at_the_venue(
    stub: BinanceStub, paper_engine: SteppedEngineClient, alice: Persona
) -> None:
    assert put(alice).status_code == 201
    order = {"client_order_id": "live-api-1", "pair": "BTC-USDT", "side": "buy", "price": "64000"}
    stub.plan_next(venue_stub.fill())
    placed = alice.client().post("/api/hft/orders", {**order, "quantity": "0.1", "venue": "binance"}, format="json")
    assert placed.status_code == 201, placed.content
    order_id = placed.json()["order"]["id"]

    filled = settle(paper_engine, order_id, {"FILLED", "REJECTED"})

    assert filled.status == "FILLED", (filled.status, filled.reason)
    assert Fill.objects.filter(order=filled).count() == 1
    assert stub.posts(order_id.replace("-", "")) == 1
