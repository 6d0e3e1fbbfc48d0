"""Idempotent retries under concurrency: many threads send the same batch at once, on real PostgreSQL.

Each thread is a separate connection and transaction, as separate web processes would be. Whatever the
interleaving, each client_order_id yields one order, every answer names that order, funds are locked
once, and no request fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections

from apps.orders.models import Balance, Order
from apps.orders.services import placement
from apps.orders.tests.conftest import use_engine_client
from apps.orders.tests.test_placement_api import BATCH, SilentEngine, balance, order, post_batch
from conftest import Persona

THREADS = 8


def needs_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite serialises every writer, so there is no race to test")


def at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` on `count` threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except Exception as exc:  # reported by the test, not lost in the thread
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_retries_of_a_batch_create_each_order_once(
    market: None, monkeypatch: pytest.MonkeyPatch, alice: Persona
) -> None:
    needs_postgresql()
    use_engine_client(monkeypatch, SilentEngine())
    batch = {"orders": [order(f"c{i}", qty="0.01") for i in range(5)]}

    def send() -> Any:
        response = alice.client().post(BATCH, batch, format="json")
        return response.status_code, [r["order"]["id"] for r in response.json()["results"]]

    answers = at_once(THREADS, send)

    assert all(isinstance(a, tuple) and a[0] == 200 for a in answers), answers
    assert len({tuple(ids) for _, ids in answers}) == 1  # every thread got the same five orders
    assert Order.objects.filter(customer=alice.customer).count() == 5
    assert balance(alice, "USDT")[1] == 5 * Decimal("640.64")  # locked once per order, not per retry


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_retries_that_lock_no_funds_are_decided_by_the_unique_constraint(
    market: None, monkeypatch: pytest.MonkeyPatch, alice: Persona
) -> None:
    needs_postgresql()
    use_engine_client(monkeypatch, SilentEngine())
    live = order("live-1", venue="binance")  # a live-venue order locks no paper balance: nothing serialises

    def send() -> Any:
        response = alice.client().post(BATCH, {"orders": [live]}, format="json")
        return response.status_code, response.json()["results"][0]["order"]["id"]

    answers = at_once(THREADS, send)

    assert all(isinstance(a, tuple) and a[0] == 200 for a in answers), answers
    assert len({order_id for _, order_id in answers}) == 1
    assert Order.objects.filter(customer=alice.customer, client_order_id="live-1").count() == 1


def test_a_retry_that_loses_the_insert_race_answers_with_the_winner_and_unlocks(
    market: None, monkeypatch: pytest.MonkeyPatch, alice: Persona
) -> None:
    use_engine_client(monkeypatch, SilentEngine())
    [winner] = post_batch(alice, [order("raced")])["results"]
    # As if our read of existing orders ran just before the winner committed: only the insert can tell.
    monkeypatch.setattr(placement, "_existing", lambda customer_id, requests: {})

    [loser] = post_batch(alice, [order("raced"), order("fresh")])["results"][:1]

    assert (loser["duplicate"], loser["order"]["id"]) == (True, winner["order"]["id"])
    assert Order.objects.filter(customer=alice.customer).count() == 2
    locked = Balance.objects.get(customer=alice.customer, currency="USDT").locked
    assert locked == 2 * Decimal("6406.4")  # the loser's hold was released, "fresh" holds its own
