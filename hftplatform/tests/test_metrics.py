"""GET /metrics: Prometheus text with sub-millisecond buckets per book and stage and per tier; the token rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from apps.orderbook.services.latency import record_stage, reset_latency
from apps.tiers.services.timing import reset_timing
from conftest import Persona

pytestmark = pytest.mark.django_db
TOKEN = "s3cret-scrape-token"


@pytest.fixture(autouse=True)
def _fresh_statistics(settings: Any) -> Iterator[None]:
    settings.HFT_LATENCY_BACKGROUND = False
    settings.HFT_METRICS_TOKEN = ""
    settings.HFT_ENV = "development"
    reset_latency()
    reset_timing()
    yield
    reset_latency()
    reset_timing()


def scrape(**headers: str) -> dict[str, list[Sample]]:
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = text_string_to_metric_families(response.content.decode())
    return {f.name: list(f.samples) for f in families if f.type == "histogram"}


def buckets(samples: list[Sample], name: str, **labels: str) -> dict[str, float]:
    return {
        s.labels["le"]: s.value
        for s in samples
        if s.name == f"{name}_bucket" and all(s.labels.get(k) == v for k, v in labels.items())
    }


def test_stage_histograms_have_sub_millisecond_buckets_per_book_and_stage() -> None:
    for value_ns in (30_000, 80_000, 400_000, 3_000_000):
        record_stage("binance:BTC-USDT", "publish_to_send", value_ns)
    record_stage("okx:BTC-USDT", "edge_to_send", 2_000_000_000)
    samples = scrape()["hft_latency_seconds"]
    send = buckets(samples, "hft_latency_seconds", book="binance:BTC-USDT", stage="publish_to_send")
    assert list(send) == [
        "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
        "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf",
    ]  # fmt: skip
    assert (send["2.5e-05"], send["5e-05"], send["0.0001"], send["0.0005"], send["0.005"]) == (0, 1, 2, 3, 4)
    assert send["+Inf"] == 4
    counts = {(s.labels["book"], s.labels["stage"]): s.value for s in samples if s.name == "hft_latency_seconds_count"}
    assert counts == {("binance:BTC-USDT", "publish_to_send"): 4, ("okx:BTC-USDT", "edge_to_send"): 1}
    slow = buckets(samples, "hft_latency_seconds", book="okx:BTC-USDT")
    assert (slow["1.0"], slow["+Inf"]) == (0, 1)
    total = next(s for s in samples if s.name == "hft_latency_seconds_sum" and s.labels["book"] == "binance:BTC-USDT")
    assert total.value == pytest.approx(3.51e-3)


def test_http_requests_are_timed_per_tier(alice: Persona, bob: Persona) -> None:
    for _ in range(3):
        assert alice.client().get("/api/hft/instruments").status_code == 200
    bob.client().get("/api/hft/instruments")
    samples = scrape()["hft_http_request_duration_seconds"]
    counts = {s.labels["tier"]: s.value for s in samples if s.name == "hft_http_request_duration_seconds_count"}
    assert counts == {"professional": 3, "free": 1}
    assert buckets(samples, "hft_http_request_duration_seconds", tier="professional")["+Inf"] == 3


def test_metrics_are_open_in_development_without_a_token() -> None:
    assert Client().get("/metrics").status_code == 200


def test_production_without_a_token_has_no_metrics(settings: Any) -> None:
    settings.HFT_ENV = "production"
    response = Client().get("/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("env", ["production", "development"])
def test_a_configured_token_is_required(settings: Any, env: str) -> None:
    settings.HFT_ENV = env
    settings.HFT_METRICS_TOKEN = TOKEN
    missing = Client().get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["code"] == "invalid_metrics_token"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": TOKEN}).status_code == 401  # the scheme too
    assert "hft_latency_seconds" in scrape(Authorization=f"Bearer {TOKEN}")


@pytest.mark.redis
def test_metrics_through_redis_count_what_every_process_flushed(market_redis: str, alice: Persona) -> None:
    from telemetry.configured import current_store
    from telemetry.recorder import WindowedRecorder

    # Another web process's recorder, flushing to the same Redis under its own name.
    other = WindowedRecorder("hft:http", current_store, process_id="other-process")
    other.record("professional", 1_000_000)
    other.flush()
    alice.client().get("/api/hft/instruments")
    samples = scrape()["hft_http_request_duration_seconds"]
    counts = {s.labels["tier"]: s.value for s in samples if s.name == "hft_http_request_duration_seconds_count"}
    assert counts == {"professional": 2}
