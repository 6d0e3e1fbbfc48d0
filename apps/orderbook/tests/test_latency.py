"""GET /api/hft/latency/{pair}: stage statistics of books fed through the pipeline, embedded and on Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps.orderbook.domain.events import BookChange
from apps.orderbook.services import latency
from apps.orderbook.services.latency import STAGE_ORDER, STAGES, record_stage, reset_latency
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.services.publisher import FeedPublisher, Precision
from apps.orderbook.tests.feeding import wait_for_hub
from conftest import Persona

pytestmark = pytest.mark.django_db
URL = "/api/hft/latency/BTC-USDT"
EVENTS = 100


@pytest.fixture(autouse=True)
def _fresh_latency(settings: Any) -> Iterator[None]:
    settings.HFT_LATENCY_BACKGROUND = False
    reset_latency()
    yield
    reset_latency()


@pytest.fixture(params=["embedded", "redis"])
def market(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("market_redis")
    return str(request.param)


def feed_binance_btc(monkeypatch: pytest.MonkeyPatch) -> int:
    """Publish EVENTS changes of binance:BTC-USDT with known hops: exchange→receive 1000 + i ns,
    receive→publish 500 ns, publish→edge 700 ns. Returns the last sequence of the venue book."""
    now = {"publish": 0}
    publisher = FeedPublisher(
        get_bus(),
        {("binance", "BTC-USDT"): Precision(8, 8)},
        {"BTC-USDT": Precision(8, 8)},
        lambda: now["publish"],
    )
    monkeypatch.setattr(latency, "edge_clock", lambda: now["publish"] + 700)
    get_hub()
    base = time.time_ns()
    last = 0
    for i in range(EVENTS):
        receive = base + i * 1_000_000
        now["publish"] = receive + 500
        change = BookChange(
            "binance", "BTC-USDT", ((100_000 + i, 5),), ((200_000, 7),), i == 0, receive - 1000 - i, receive
        )
        events = publisher.handle([change])
        last = max([e.seq for e in events if e.book == "binance:BTC-USDT"], default=last)
        wait_for_hub("binance:BTC-USDT", last)  # on Redis the hub's thread must see it before the clock moves
        wait_for_hub("consolidated:BTC-USDT", i + 1)
    return last


def test_latency_reports_every_stage_of_a_fed_book(
    market: str, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_binance_btc(monkeypatch)
    response = alice.client().get(URL, {"venue": "binance"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["pair"], body["venue"], body["book"]) == ("BTC-USDT", "binance", "binance:BTC-USDT")
    assert list(body["stages"]) == list(STAGE_ORDER)
    for window in ("1m", "5m", "1h"):
        exchange = body["stages"]["exchange_to_receive"][window]
        assert exchange["count"] == EVENTS
        # 1000..1099 ns, below 2048 ns where HDR is exact: ranks 50, 95, 99, 100 (of 100), and the max.
        assert (exchange["p50_us"], exchange["p95_us"], exchange["p99_us"]) == ("1.049", "1.094", "1.098")
        assert (exchange["p999_us"], exchange["max_us"]) == ("1.099", "1.099")
        assert body["stages"]["receive_to_publish"][window]["p99_us"] == "0.500"
        assert body["stages"]["publish_to_edge"][window]["max_us"] == "0.700"
        assert body["stages"]["publish_to_edge"][window]["count"] == EVENTS
        assert body["stages"]["edge_to_send"][window]["count"] == 0  # nobody is streaming
        assert body["stages"]["edge_to_send"][window]["p50_us"] is None
    assert body["stages"]["exchange_to_receive"]["1m"]["window_s"] == 60
    assert body["stages"]["exchange_to_receive"]["1h"]["since_ns"] <= body["as_of_ns"] - 3300 * 10**9


def test_consolidated_is_the_default_and_a_pair_may_have_a_slash(
    alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_binance_btc(monkeypatch)
    body = alice.client().get("/api/hft/latency/BTC/USDT").json()
    assert (body["venue"], body["book"]) == ("consolidated", "consolidated:BTC-USDT")
    assert body["stages"]["publish_to_edge"]["5m"]["count"] > 0


def test_stages_the_stream_records_appear_with_microsecond_precision(alice: Persona) -> None:
    record_stage("binance:BTC-USDT", "edge_to_send", 1_234_567)
    record_stage("binance:BTC-USDT", "publish_to_send", 1_500)
    stages = alice.client().get(URL, {"venue": "binance"}).json()["stages"]
    # The top of the HDR bucket of 1,234,567 ns (1,024 ns wide there).
    assert stages["edge_to_send"]["1m"]["max_us"] == "1234.943"
    assert stages["publish_to_send"]["1m"]["p50_us"] == "1.500"
    with pytest.raises(ValueError, match="unknown latency stage"):
        record_stage("binance:BTC-USDT", "edge_to_moon", 1)
    assert "edge_to_send" in STAGES


def test_every_tier_may_read_latency_and_errors_are_coded(bob: Persona) -> None:
    client = bob.client()  # the free tier
    assert client.get(URL).status_code == 200
    unknown = client.get("/api/hft/latency/NOPE-USD")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_pair"
    assert client.get(URL, {"venue": "kraken"}).json()["code"] == "unknown_venue"


def test_latency_needs_an_api_key(db: None) -> None:
    from rest_framework.test import APIClient

    response = APIClient().get(URL)
    assert response.status_code == 401
    assert set(response.json()) == {"code", "message", "detail"}


def test_a_rebuilt_replica_is_not_measured_as_an_event(alice: Persona, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.orderbook.services.hub import RESET

    last = feed_binance_btc(monkeypatch)
    view = get_hub().view("binance:BTC-USDT", None)
    assert view is not None
    event = get_bus().history("binance:BTC-USDT", last - 1, 1)[0]
    event.reason = RESET
    latency.record_book_event(event)
    body = alice.client().get(URL, {"venue": "binance"}).json()
    assert body["stages"]["publish_to_edge"]["1m"]["count"] == EVENTS
