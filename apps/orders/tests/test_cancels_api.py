"""Cancels through the API (one, several, all) and the dead man's switch, executed by the real paper engine."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.orders.models import DeadMansSwitch, Order
from apps.orders.services.deadman import fire_due_switches
from apps.orders.tests.conftest import use_engine_client
from apps.orders.tests.test_placement_api import ORDERS, AbsentEngine, balance, order, post_batch
from apps.orders.tests.test_reads_and_bola import place
from conftest import Persona

D = Decimal


def test_delete_cancels_a_resting_order_and_releases_its_funds(paper_engine: Any, alice: Persona) -> None:
    placed = place(alice, "resting", price="64000", qty="0.1")

    response = alice.client().delete(f"{ORDERS}/{placed['id']}")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == ("CANCELED", "canceled_by_customer")
    assert balance(alice, "USDT") == (D(100000), D(0))


def test_canceling_a_finished_order_is_a_409(paper_engine: Any, alice: Persona) -> None:
    placed = place(alice, "filled", price="65001", qty="0.1")

    response = alice.client().delete(f"{ORDERS}/{placed['id']}")

    assert (response.status_code, response.json()["code"]) == (409, "order_not_open")
    assert response.json()["detail"] == {"status": "FILLED"}


def test_cancel_of_several_answers_each(paper_engine: Any, alice: Persona) -> None:
    resting = place(alice, "resting")
    filled = place(alice, "filled", price="65001", qty="0.1")
    unknown = "22222222-2222-2222-2222-222222222222"

    body = (
        alice.client()
        .post(f"{ORDERS}/cancel", {"order_ids": [resting["id"], filled["id"], unknown]}, format="json")
        .json()
    )

    assert [(r["canceled"], r["error"]) for r in body["results"]] == [
        (True, None),
        (False, "order_not_open"),
        (False, "order_not_found"),
    ]
    assert body["results"][0]["order"]["status"] == "CANCELED"


def test_cancel_all_cancels_every_open_order_or_one_pairs(paper_engine: Any, alice: Persona) -> None:
    place(alice, "a")
    place(alice, "b", side="sell", price="66000")
    client = alice.client()

    only_eth = client.post(f"{ORDERS}/cancel-all", {"pair": "ETH/USDT"}, format="json").json()
    everything = client.post(f"{ORDERS}/cancel-all", {}, format="json").json()

    assert (only_eth, everything) == ({"cancel_requested": 0}, {"cancel_requested": 2})
    assert set(Order.objects.values_list("status", flat=True)) == {"CANCELED"}
    assert balance(alice, "BTC") == (D(2), D(0))


# --- dead man's switch ----------------------------------------------------------------------------------


def arm(persona: Persona, timeout_ms: Any) -> Any:
    return persona.client().post(f"{ORDERS}/cancel-all-after", {"timeout_ms": timeout_ms}, format="json")


def test_arming_sets_the_deadline_and_zero_disarms(paper_engine: Any, alice: Persona) -> None:
    armed = arm(alice, 5000).json()
    disarmed = arm(alice, 0).json()

    assert (armed["armed"], armed["timeout_ms"]) == (True, 5000)
    assert disarmed == {"armed": False, "timeout_ms": 0, "fires_at": None}
    assert DeadMansSwitch.objects.get(customer=alice.customer).fires_at is None


def test_a_bad_timeout_is_a_400(paper_engine: Any, alice: Persona) -> None:
    assert arm(alice, -1).status_code == 400
    assert arm(alice, "soon").status_code == 400
    assert arm(alice, 86_400_001).json()["code"] == "invalid_timeout"


def test_a_due_switch_cancels_all_open_orders_once(paper_engine: Any, alice: Persona, bob_trader: Persona) -> None:
    post_batch(alice, [order("a"), order("b", side="sell", price="66000")])
    place(bob_trader, "bobs")
    arm(alice, 1000)
    arm(bob_trader, 60_000)

    fired = fire_due_switches(timezone.now() + timedelta(seconds=2))
    again = fire_due_switches(timezone.now() + timedelta(seconds=3))

    assert (fired, again) == (1, 0)
    assert set(Order.objects.filter(customer=alice.customer).values_list("status", "reason")) == {
        ("CANCELED", "dead_mans_switch")
    }
    assert Order.objects.get(customer=bob_trader.customer).status == "NEW"
    assert DeadMansSwitch.objects.get(customer=alice.customer).fires_at is None


def test_a_switch_that_is_re_armed_in_time_does_not_fire(paper_engine: Any, alice: Persona) -> None:
    place(alice, "a")
    arm(alice, 1000)
    arm(alice, 60_000)  # the heartbeat pushes the deadline back

    assert fire_due_switches(timezone.now() + timedelta(seconds=2)) == 0
    assert Order.objects.get().status == "NEW"


def test_a_disarmed_switch_never_fires(paper_engine: Any, alice: Persona) -> None:
    place(alice, "a")
    arm(alice, 1000)
    arm(alice, 0)

    assert fire_due_switches(timezone.now() + timedelta(hours=1)) == 0


def test_a_switch_stays_armed_while_no_engine_can_cancel(
    paper_engine: Any, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    place(alice, "a")
    arm(alice, 1000)
    use_engine_client(monkeypatch, AbsentEngine())

    missed = fire_due_switches(timezone.now() + timedelta(seconds=2))
    use_engine_client(monkeypatch, paper_engine)
    fired = fire_due_switches(timezone.now() + timedelta(seconds=3))

    assert (missed, fired) == (0, 1)
    assert Order.objects.get().reason == "dead_mans_switch"


def test_a_cancel_without_an_engine_is_a_503_and_changes_nothing(
    paper_engine: Any, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = place(alice, "a")
    use_engine_client(monkeypatch, AbsentEngine())

    response = alice.client().delete(f"{ORDERS}/{placed['id']}")

    assert (response.status_code, response.json()["code"]) == (503, "execution_unavailable")
    assert Order.objects.get().status == "NEW"
