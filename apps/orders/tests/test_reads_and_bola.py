"""Reading orders and balances, and that a customer never reads, cancels or learns of another's orders."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.orders.models import Order
from apps.orders.tests.test_placement_api import ORDERS, order, post_batch
from apps.tiers.services.accounts import issue_key
from conftest import Persona, make_persona


def place(persona: Persona, cid: str, **changes: Any) -> dict[str, Any]:
    [result] = post_batch(persona, [order(cid, **changes)])["results"]
    placed: dict[str, Any] = result["order"]
    return placed


def test_an_order_is_read_by_id_with_its_fills(paper_engine: Any, alice: Persona) -> None:
    placed = place(alice, "take", price="65002", qty="1")  # 0.5 at 65001, 0.5 at 65002

    response = alice.client().get(f"{ORDERS}/{placed['id']}")

    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["filled_quantity"], body["average_price"]) == ("FILLED", "1", "65001.5")
    assert [(f["price"], f["quantity"]) for f in body["fills"]] == [("65001", "0.5"), ("65002", "0.5")]


def test_an_order_is_read_by_client_order_id(paper_engine: Any, alice: Persona) -> None:
    placed = place(alice, "my-id:1")

    response = alice.client().get(f"{ORDERS}/by-client-id/my-id:1")

    assert (response.status_code, response.json()["id"]) == (200, placed["id"])


def test_the_list_is_newest_first_and_pages_with_a_cursor(paper_engine: Any, alice: Persona) -> None:
    for i in range(5):
        place(alice, f"o{i}")
    client = alice.client()

    first = client.get(ORDERS, {"limit": 2}).json()
    second = client.get(ORDERS, {"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get(ORDERS, {"limit": 2, "cursor": second["next_cursor"]}).json()

    pages = [[o["client_order_id"] for o in page["results"]] for page in (first, second, third)]
    assert pages == [["o4", "o3"], ["o2", "o1"], ["o0"]]
    assert third["next_cursor"] is None


def test_the_list_filters_by_status_and_pair(paper_engine: Any, alice: Persona) -> None:
    place(alice, "resting")
    place(alice, "filled", price="65001", qty="0.1")
    place(alice, "rejected", price="99999")
    client = alice.client()

    def ids(**query: str) -> list[str]:
        return [o["client_order_id"] for o in client.get(ORDERS, query).json()["results"]]

    assert ids(status="FILLED") == ["filled"]
    assert ids(status="open") == ["resting"]
    assert ids(pair="BTC/USDT") == ["rejected", "filled", "resting"]
    assert ids(pair="ETH-USDT") == []


def test_a_bad_cursor_or_status_is_a_400(paper_engine: Any, alice: Persona) -> None:
    client = alice.client()

    assert client.get(ORDERS, {"cursor": "not-a-cursor"}).json()["code"] == "invalid_cursor"
    assert client.get(ORDERS, {"status": "SLEEPING"}).status_code == 400


@pytest.mark.parametrize("client_order_id", ["a%00b", "x" * 65, "has%20space"])
def test_a_client_order_id_no_order_can_have_is_a_404_not_a_500(
    paper_engine: Any, alice: Persona, client_order_id: str
) -> None:
    # a NUL reached PostgreSQL, which refuses it in a query (a 500 there; SQLite let it through)
    response = alice.client().get(f"{ORDERS}/by-client-id/{client_order_id}")

    assert (response.status_code, response.json()["code"]) == (404, "order_not_found")


@pytest.mark.parametrize(
    "position",
    [
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
        "2026-01-01T00:00:00",  # naive: never issued by this API
    ],
)
def test_a_crafted_cursor_is_a_400_not_a_500(paper_engine: Any, alice: Persona, position: str) -> None:
    cursor = base64.urlsafe_b64encode(f"{position}|{uuid.uuid4()}".encode()).decode()

    response = alice.client().get(ORDERS, {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_balances_show_available_and_locked(paper_engine: Any, alice: Persona) -> None:
    place(alice, "resting", price="64000", qty="0.1")

    balances = {b["currency"]: b for b in alice.client().get("/api/hft/balances").json()}

    assert balances["USDT"] == {"currency": "USDT", "available": "93593.6", "locked": "6406.4", "total": "100000"}


def test_reads_need_a_key_with_the_read_permission(paper_engine: Any, db: None) -> None:
    writer = make_persona("Alice Bot", "professional", can_trade=True, can_read=False)

    assert writer.client().get(ORDERS).json()["code"] == "missing_permission"
    assert writer.client().get("/api/hft/balances").status_code == 403


def test_a_read_only_key_of_the_same_customer_may_read_but_not_cancel(paper_engine: Any, alice: Persona) -> None:
    placed = place(alice, "mine")
    key, secret = issue_key(alice.customer, label="alice reader")
    reader = Persona(alice.customer, key, secret)

    assert reader.client().get(f"{ORDERS}/{placed['id']}").status_code == 200
    assert reader.client().delete(f"{ORDERS}/{placed['id']}").json()["code"] == "missing_permission"


# --- BOLA -----------------------------------------------------------------------------------------------


def test_bob_cannot_read_alices_order_by_id_or_client_id(paper_engine: Any, alice: Persona, bob: Persona) -> None:
    placed = place(alice, "alice-secret")

    by_id = bob.client().get(f"{ORDERS}/{placed['id']}")
    by_client_id = bob.client().get(f"{ORDERS}/by-client-id/alice-secret")
    unknown = bob.client().get(f"{ORDERS}/00000000-0000-0000-0000-000000000000")

    assert by_id.status_code == by_client_id.status_code == unknown.status_code == 404
    assert by_id.json()["code"] == unknown.json()["code"] == "order_not_found"


def test_bob_does_not_see_alices_orders_or_balances(paper_engine: Any, alice: Persona, bob: Persona) -> None:
    place(alice, "alice-1")

    assert bob.client().get(ORDERS).json()["results"] == []
    assert bob.client().get(ORDERS, {"status": "open"}).json()["results"] == []
    assert bob.client().get("/api/hft/balances").json() == []


def test_bob_cannot_cancel_alices_order(paper_engine: Any, alice: Persona, bob_trader: Persona) -> None:
    placed = place(alice, "alice-1")
    client = bob_trader.client()

    single = client.delete(f"{ORDERS}/{placed['id']}")
    batch = client.post(f"{ORDERS}/cancel", {"order_ids": [placed["id"]]}, format="json")
    everything = client.post(f"{ORDERS}/cancel-all", {}, format="json")

    assert (single.status_code, single.json()["code"]) == (404, "order_not_found")
    assert batch.json()["results"] == [
        {"order_id": placed["id"], "canceled": False, "error": "order_not_found", "order": None}
    ]
    assert everything.json() == {"cancel_requested": 0}
    assert Order.objects.get(id=placed["id"]).status == "NEW"


def test_bob_reusing_alices_client_order_id_learns_nothing(
    paper_engine: Any, alice: Persona, bob_trader: Persona
) -> None:
    place(alice, "shared-id", qty="0.2")

    [result] = post_batch(bob_trader, [order("shared-id", qty="0.1")])["results"]

    assert result["duplicate"] is False
    assert result["order"]["quantity"] == "0.1"
    assert Order.objects.filter(client_order_id="shared-id").count() == 2


def test_batch_results_never_carry_another_customers_order(
    paper_engine: Any, alice: Persona, bob_trader: Persona
) -> None:
    alices = place(alice, "a1")

    body = bob_trader.client().post(
        f"{ORDERS}/cancel", {"order_ids": [alices["id"], "11111111-1111-1111-1111-111111111111"]}, format="json"
    )

    assert [r["error"] for r in body.json()["results"]] == ["order_not_found", "order_not_found"]
    assert all(r["order"] is None for r in body.json()["results"])


def test_reading_a_page_costs_the_same_queries_for_two_orders_or_forty(
    paper_engine: Any, alice_enterprise: Persona
) -> None:
    client = alice_enterprise.client()
    counts = []
    placed = 0
    for total in (2, 40):
        post_batch(alice_enterprise, [order(f"p{i}", price="62000", qty="0.001") for i in range(placed, total)])
        placed = total
        client.get(ORDERS)  # warm: the key cache and the catalogue
        with CaptureQueriesContext(connection) as queries:
            page = client.get(ORDERS, {"limit": 100}).json()
        counts.append(len(queries))
        assert len(page["results"]) == total

    assert counts[0] == counts[1], counts
