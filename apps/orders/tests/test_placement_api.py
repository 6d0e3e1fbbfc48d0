"""Order entry through the API: validation rules, batches atomic and not, validate_only, idempotency, tier caps.

The real paper engine executes (stepped on the test's thread, `paper_engine`) against the known book of
the conftest: bids 64999 x 1, 64998 x 2; asks 65001 x 0.5, 65002 x 2; Alice starts with 100000 USDT, 2 BTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.orderbook.models import Instrument
from apps.orders.models import Balance, Order, TradingRules
from apps.orders.services.engine import EngineClient, EngineUnavailable, ExecutionReport
from apps.orders.tests.conftest import SteppedEngineClient, use_engine_client
from conftest import Persona, make_persona

BATCH = "/api/hft/orders/batch"
ORDERS = "/api/hft/orders"
D = Decimal


def order(cid: str, side: str = "buy", price: str | None = "64000", qty: str = "0.1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"client_order_id": cid, "pair": "BTC-USDT", "side": side, "quantity": qty, **extra}
    if price is not None:
        body["price"] = price
    return body


def post_batch(persona: Persona, orders: list[dict[str, Any]], **flags: bool) -> dict[str, Any]:
    response = persona.client().post(BATCH, {"orders": orders, **flags}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def balance(persona: Persona, currency: str) -> tuple[Decimal, Decimal]:
    row = Balance.objects.get(customer=persona.customer, currency=currency)
    return row.available, row.locked


# --- outcomes -------------------------------------------------------------------------------------------


def test_batch_answers_each_order_in_request_order_with_its_execution(paper_engine: Any, alice: Persona) -> None:
    body = post_batch(
        alice,
        [
            order("take", price="65001", qty="0.1"),
            order("rest", side="sell", price="66000"),
            order("market", side="sell", price=None, type="market"),
            order("fat-finger", side="sell", price="99999"),
        ],
    )

    results = body["results"]
    assert [r["client_order_id"] for r in results] == ["take", "rest", "market", "fat-finger"]
    assert [r["status"] for r in results] == ["FILLED", "NEW", "FILLED", "REJECTED"]
    assert results[0]["fills"] == [
        {"price": "65001", "quantity": "0.1", "fee": "6.5001", "fee_currency": "USDT", "liquidity": "taker",
         "ts_ns": results[0]["fills"][0]["ts_ns"]}
    ]  # fmt: skip
    assert results[2]["order"]["time_in_force"] == "IOC"  # a market order's default
    assert results[3]["reason"] == "price_outside_band"
    assert (body["accepted"], body["rejected"]) == (3, 1)


def test_pair_is_accepted_with_a_slash_or_a_dash(paper_engine: Any, alice: Persona) -> None:
    body = post_batch(alice, [order("slash", pair="btc/usdt"), order("dash", pair="BTC-USDT")])

    assert [r["order"]["pair"] for r in body["results"]] == ["BTC-USDT", "BTC-USDT"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pair": "DOGE-XYZ"}, "unknown_instrument"),
        ({"venue": "nasdaq"}, "unknown_venue"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"quantity": "-1"}, "invalid_quantity"),
        ({"quantity": "0.000001"}, "quantity_off_grid"),
        ({"price": None}, "price_required"),
        ({"type": "market"}, "price_not_allowed"),
        ({"type": "market", "price": None, "time_in_force": "POST_ONLY"}, "invalid_time_in_force"),
        ({"price": "0"}, "invalid_price"),
        ({"price": "-64000"}, "invalid_price"),
        ({"price": "64000.001"}, "price_off_grid"),
        ({"quantity": "0.00001"}, "below_min_notional"),
        ({"price": "70000"}, "price_outside_band"),
        ({"price": "60000"}, "price_outside_band"),
        ({"pair": "ETH-USDT", "price": "3000"}, "no_market"),
        ({"quantity": "2", "price": "65000"}, "insufficient_balance"),
        ({"side": "sell", "price": "65500", "quantity": "3"}, "insufficient_balance"),
    ],
)
def test_each_rule_rejects_the_order_with_its_reason(
    paper_engine: Any, alice: Persona, changes: dict[str, Any], reason: str
) -> None:
    body = order("o1")
    body.update({k: v for k, v in changes.items() if v is not None})
    if "price" in changes and changes["price"] is None:
        del body["price"]

    [result] = post_batch(alice, [body])["results"]

    assert (result["status"], result["reason"]) == ("REJECTED", reason)


def test_instrument_not_trading_is_rejected(paper_engine: Any, alice: Persona) -> None:
    TradingRules.objects.filter(instrument__symbol="BTC-USDT").update(is_trading=False)

    [result] = post_batch(alice, [order("o1")])["results"]

    assert result["reason"] == "instrument_not_trading"


def test_stale_book_means_no_market(paper_engine: Any, alice: Persona) -> None:
    from apps.orders.tests.conftest import publish_book

    publish_book([("64999", "1")], [])  # one-sided: no mid to check the band against

    [result] = post_batch(alice, [order("o1")])["results"]

    assert result["reason"] == "no_market"


def test_a_live_order_without_stored_credentials_is_rejected_at_placement(paper_engine: Any, alice: Persona) -> None:
    from apps.orders.services.credentials import store_venue_credential

    [missing] = post_batch(alice, [order("live-1", venue="binance")])["results"]
    store_venue_credential(alice.customer.id, "binance", "alice-key", "alice-secret")
    [other_venue] = post_batch(alice, [order("live-2", venue="binance_us")])["results"]

    assert (missing["status"], missing["reason"]) == ("REJECTED", "venue_credentials_missing")
    assert (other_venue["status"], other_venue["reason"]) == ("REJECTED", "venue_credentials_missing")
    assert paper_engine.submitted == []  # nothing went on to the engine, so nothing to the venue


def test_a_rejected_order_is_recorded_with_its_reason_and_locks_nothing(paper_engine: Any, alice: Persona) -> None:
    [result] = post_batch(alice, [order("fat", price="99999", side="sell")])["results"]

    stored = Order.objects.get(id=result["order"]["id"])
    assert (stored.status, stored.reason, stored.locked_amount) == ("REJECTED", "price_outside_band", 0)
    assert balance(alice, "BTC") == (D(2), D(0))


def test_an_unknown_instrument_is_answered_without_recording_an_order(paper_engine: Any, alice: Persona) -> None:
    [result] = post_batch(alice, [order("o1", pair="DOGE-XYZ")])["results"]

    assert result["order"] is None
    assert not Order.objects.exists()


def test_funds_are_spent_in_request_order_within_a_batch(paper_engine: Any, alice: Persona) -> None:
    # 1 BTC at 64000 locks 64000 + 10 bps; the second no longer fits in 100000 USDT.
    body = post_batch(alice, [order("first", qty="1"), order("second", qty="1")])

    assert [(r["status"], r["reason"]) for r in body["results"]] == [
        ("NEW", None),
        ("REJECTED", "insufficient_balance"),
    ]
    assert balance(alice, "USDT") == (D(100000) - D("64064"), D("64064"))


# --- atomic ---------------------------------------------------------------------------------------------


def test_atomic_batch_with_one_invalid_order_places_none(paper_engine: SteppedEngineClient, alice: Persona) -> None:
    body = post_batch(alice, [order("good"), order("bad", price="64000.001"), order("good2")], atomic=True)

    assert [(r["status"], r["reason"]) for r in body["results"]] == [
        ("REJECTED", "atomic_batch_failed"),
        ("REJECTED", "price_off_grid"),
        ("REJECTED", "atomic_batch_failed"),
    ]
    assert all(r["order"] is None for r in body["results"])
    assert not Order.objects.exists()
    assert paper_engine.submitted == []
    assert not Balance.objects.filter(locked__gt=0).exists()


def test_atomic_batch_fails_whole_when_funds_run_out(paper_engine: Any, alice: Persona) -> None:
    body = post_batch(alice, [order("first", qty="1"), order("second", qty="1")], atomic=True)

    assert [r["reason"] for r in body["results"]] == ["atomic_batch_failed", "insufficient_balance"]
    assert not Order.objects.exists()
    assert not Balance.objects.filter(locked__gt=0).exists()


def test_atomic_batch_of_valid_orders_places_them_all(paper_engine: Any, alice: Persona) -> None:
    body = post_batch(alice, [order("a"), order("b", side="sell", price="66000")], atomic=True)

    assert [r["status"] for r in body["results"]] == ["NEW", "NEW"]
    assert Order.objects.count() == 2


def test_non_atomic_batch_places_the_valid_and_rejects_the_invalid(paper_engine: Any, alice: Persona) -> None:
    body = post_batch(alice, [order("good"), order("bad", quantity="0")])

    assert [r["status"] for r in body["results"]] == ["NEW", "REJECTED"]
    assert Order.objects.filter(status="NEW").count() == 1


# --- validate_only ---------------------------------------------------------------------------------------


def test_validate_only_checks_everything_and_writes_nothing(paper_engine: SteppedEngineClient, alice: Persona) -> None:
    body = post_batch(alice, [order("ok"), order("bad", price="70000")], validate_only=True)

    assert [(r["status"], r["reason"]) for r in body["results"]] == [
        ("VALIDATED", None),
        ("REJECTED", "price_outside_band"),
    ]
    assert not Order.objects.exists()
    assert not Balance.objects.exists()
    assert paper_engine.submitted == []


def test_validate_only_counts_funds_across_the_batch(paper_engine: Any, alice: Persona) -> None:
    body = post_batch(alice, [order("first", qty="1"), order("second", qty="1")], validate_only=True)

    assert [r["reason"] for r in body["results"]] == [None, "insufficient_balance"]


def test_validate_only_atomic_reports_what_an_atomic_placement_would(paper_engine: Any, alice: Persona) -> None:
    body = post_batch(alice, [order("ok"), order("bad", quantity="0")], validate_only=True, atomic=True)

    assert [r["reason"] for r in body["results"]] == ["atomic_batch_failed", "invalid_quantity"]


# --- idempotency ----------------------------------------------------------------------------------------


def test_retried_client_order_id_returns_the_original_and_creates_nothing(paper_engine: Any, alice: Persona) -> None:
    [first] = post_batch(alice, [order("once", qty="0.1")])["results"]

    [retry] = post_batch(alice, [order("once", qty="0.5", price="64500")])["results"]

    assert retry["duplicate"] is True
    assert retry["order"]["id"] == first["order"]["id"]
    assert retry["order"]["quantity"] == "0.1"
    assert Order.objects.count() == 1
    assert balance(alice, "USDT")[1] == D("6406.4")  # locked once


def test_retry_of_a_rejected_order_returns_the_rejection(paper_engine: Any, alice: Persona) -> None:
    post_batch(alice, [order("fat", price="99999")])

    [retry] = post_batch(alice, [order("fat", price="64000")])["results"]

    assert (retry["duplicate"], retry["status"], retry["reason"]) == (True, "REJECTED", "price_outside_band")
    assert Order.objects.count() == 1


def test_a_batch_mixing_retries_and_new_orders_places_only_the_new(paper_engine: Any, alice: Persona) -> None:
    post_batch(alice, [order("a")])

    body = post_batch(alice, [order("a"), order("b")], atomic=True)

    assert [(r["client_order_id"], r["duplicate"]) for r in body["results"]] == [("a", True), ("b", False)]
    assert Order.objects.count() == 2


def test_the_same_client_order_id_twice_in_one_request_is_refused(paper_engine: Any, alice: Persona) -> None:
    response = alice.client().post(BATCH, {"orders": [order("x"), order("x")]}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "duplicate_client_order_id"


def test_client_order_ids_are_per_customer(paper_engine: Any, alice: Persona, bob_trader: Persona) -> None:
    [mine] = post_batch(alice, [order("same")])["results"]

    [theirs] = post_batch(bob_trader, [order("same")])["results"]

    assert theirs["duplicate"] is False
    assert theirs["order"]["id"] != mine["order"]["id"]


# --- shape, tier and permission refusals -----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"price": 64000.5},  # a float: not exact
        {"quantity": "abc"},
        {"quantity": "NaN"},
        {"side": "hold"},
        {"type": "stop"},
        {"time_in_force": "GTD"},
        {"client_order_id": "has space"},
        {"price": "1.0000000000001"},  # 13 decimals
        {"quantity": "1e20"},  # 21 integer digits in exponent notation: more than the columns hold
        {"price": "1E+400"},
        {"quantity": "Infinity"},
    ],
)
def test_malformed_orders_are_a_400_with_details(paper_engine: Any, alice: Persona, bad: dict[str, Any]) -> None:
    response = alice.client().post(BATCH, {"orders": [{**order("o1"), **bad}]}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert not Order.objects.exists()


def test_a_huge_order_the_columns_can_hold_is_refused_for_its_balance_not_a_500(
    paper_engine: Any, alice: Persona
) -> None:
    # 16 integer digits at 64000 each: a notional (and fee) of 20 digits, beyond the default 28-digit context
    # once quantized to 12 places.
    response = alice.client().post(ORDERS, order("huge", qty="1E+15"), format="json")

    assert response.status_code == 422, response.content
    assert response.json()["detail"]["reason"] == "insufficient_balance"


def test_an_empty_batch_is_a_400(paper_engine: Any, alice: Persona) -> None:
    response = alice.client().post(BATCH, {"orders": []}, format="json")

    assert response.status_code == 400


def test_batch_larger_than_the_tier_allows_is_refused(paper_engine: Any, alice: Persona) -> None:
    orders = [order(f"o{i}") for i in range(21)]  # professional: 20

    response = alice.client().post(BATCH, {"orders": orders}, format="json")

    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    assert response.json()["detail"] == {"max_batch_size": 20, "sent": 21}
    assert not Order.objects.exists()


def test_batch_orders_need_the_tiers_batch_feature(paper_engine: Any, db: None) -> None:
    carol = make_persona("Carol Markets", "basic", can_trade=True)

    response = carol.client().post(BATCH, {"orders": [order("o1")]}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "feature_not_in_tier"


def test_orders_need_a_key_with_the_trade_permission(paper_engine: Any, db: None) -> None:
    reader = make_persona("Alice Readonly", "professional")  # can_trade defaults to False

    batch = reader.client().post(BATCH, {"orders": [order("o1")]}, format="json")
    single = reader.client().post(ORDERS, order("o1"), format="json")

    assert (batch.status_code, batch.json()["code"]) == (403, "missing_permission")
    assert (single.status_code, single.json()["code"]) == (403, "missing_permission")


def test_orders_need_an_api_key(paper_engine: Any) -> None:
    from rest_framework.test import APIClient

    response = APIClient().post(BATCH, {"orders": [order("o1")]}, format="json")

    assert response.status_code == 401


# --- single order ---------------------------------------------------------------------------------------


def test_single_order_is_created_then_its_retry_is_a_200(paper_engine: Any, alice: Persona) -> None:
    client = alice.client()

    created = client.post(ORDERS, order("one"), format="json")
    retried = client.post(ORDERS, order("one"), format="json")

    assert (created.status_code, created.json()["status"]) == (201, "NEW")
    assert (retried.status_code, retried.json()["duplicate"]) == (200, True)
    assert retried.json()["order"]["id"] == created.json()["order"]["id"]


def test_single_rejected_order_is_a_422_with_its_reason(paper_engine: Any, alice: Persona) -> None:
    response = alice.client().post(ORDERS, order("one", price="64000.001"), format="json")

    assert response.status_code == 422
    body = response.json()
    assert (body["code"], body["detail"]["reason"]) == ("order_rejected", "price_off_grid")


def test_single_order_on_a_tier_without_batches(paper_engine: Any, db: None) -> None:
    carol = make_persona("Carol Markets", "basic", can_trade=True)

    response = carol.client().post(ORDERS, order("one"), format="json")

    assert response.status_code == 201


def test_single_order_validate_only_is_a_200_and_writes_nothing(paper_engine: Any, alice: Persona) -> None:
    response = alice.client().post(ORDERS, {**order("one"), "validate_only": True}, format="json")

    assert (response.status_code, response.json()["status"]) == (200, "VALIDATED")
    assert not Order.objects.exists()


def test_a_client_order_id_is_generated_when_absent(paper_engine: Any, alice: Persona) -> None:
    body = order("x")
    del body["client_order_id"]

    response = alice.client().post(ORDERS, body, format="json")

    assert response.json()["client_order_id"].startswith("auto-")


# --- the engine's answer --------------------------------------------------------------------------------


class SilentEngine(EngineClient):
    """An engine that takes commands but reports none in time."""

    def send(self, op: str, order_ids: Any, **kwargs: Any) -> dict[Any, ExecutionReport]:
        return {}


class AbsentEngine(EngineClient):
    def send(self, op: str, order_ids: Any, **kwargs: Any) -> dict[Any, ExecutionReport]:
        raise EngineUnavailable("not running")


@pytest.mark.parametrize("engine", [SilentEngine(), AbsentEngine()])
def test_orders_the_engine_does_not_report_in_time_stay_pending_with_funds_locked(
    market: None, monkeypatch: pytest.MonkeyPatch, alice: Persona, engine: EngineClient
) -> None:
    use_engine_client(monkeypatch, engine)

    [result] = post_batch(alice, [order("o1")])["results"]

    assert result["status"] == "PENDING"
    assert Order.objects.get(client_order_id="o1").status == "PENDING"
    assert balance(alice, "USDT")[1] == D("6406.4")


# --- cost -----------------------------------------------------------------------------------------------


def test_a_batch_costs_the_same_number_of_queries_for_one_order_or_fifty(
    paper_engine: Any, alice_enterprise: Persona
) -> None:
    client = alice_enterprise.client()
    client.post(BATCH, {"orders": [order("warm-up")]}, format="json")  # key cache, balance rows, catalogue
    counts = []
    # SQLite binds at most 999 parameters per statement, so Django splits a bulk INSERT past ~38 orders
    # there; PostgreSQL takes the 50 in one.
    for size in (1, 50 if connection.vendor == "postgresql" else 30):
        orders = [order(f"n{size}-{i}", price="62000", qty="0.001") for i in range(size)]
        with CaptureQueriesContext(connection) as queries:
            response = client.post(BATCH, {"orders": orders}, format="json")
        assert [r["status"] for r in response.json()["results"]] == ["NEW"] * size
        counts.append(len(queries))

    assert counts[0] == counts[1], counts


def test_placement_writes_in_bulk_not_per_order(market: None, monkeypatch: pytest.MonkeyPatch, alice: Persona) -> None:
    use_engine_client(monkeypatch, SilentEngine())
    alice.client().post(BATCH, {"orders": [order("warm-up")]}, format="json")
    orders = [order(f"o{i}", price="62000", qty="0.001") for i in range(20)]

    with CaptureQueriesContext(connection) as queries:
        alice.client().post(BATCH, {"orders": orders}, format="json")

    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT") and '"orders_order"' in q["sql"]]
    assert len(inserts) == 1
    assert Order.objects.count() == 21
    assert Instrument.objects.filter(symbol="BTC-USDT").exists()
