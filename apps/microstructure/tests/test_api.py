"""REST: GET /api/hft/microstructure/{pair} (live windows) and /history (bars), tier-checked and coded errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.microstructure.domain.metrics import METRIC_NAMES
from apps.microstructure.models import MetricBar
from apps.microstructure.services.live import get_microstructure
from apps.microstructure.tests.conftest import Feed, S
from apps.orderbook.models import Instrument
from conftest import Persona

pytestmark = pytest.mark.django_db
URL = "/api/hft/microstructure/BTC-USDT"
HISTORY = URL + "/history"


@pytest.fixture
def market(feed: Feed) -> Feed:
    """OKX BTC-USDT at 65000.0 / 65001.0 with a buy of 0.5 and a sell of 0.25 in the windows."""
    live = get_microstructure()
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    now = time.time_ns()
    live.tick(now)
    feed.trade(650_010, 50_000_000, "buy", now + 1)
    feed.trade(650_000, 25_000_000, "sell", now + 2)
    live.tick(now + 3)
    return feed


def test_every_metric_of_every_window_for_a_venue_book(market: Feed, alice: Persona) -> None:
    response = alice.client().get(URL, {"venue": "okx"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["pair"], body["venue"], body["book"], body["stale"]) == ("BTC-USDT", "okx", "okx:BTC-USDT", False)
    assert list(body["windows"]) == ["10s", "1m", "5m"]
    for name, window_s in (("10s", 10), ("1m", 60), ("5m", 300)):
        window = body["windows"][name]
        assert window["window_s"] == window_s
        assert list(window["metrics"]) == list(METRIC_NAMES)
        assert Decimal(window["metrics"]["volume_base"]["value"]) == Decimal("0.75")
        assert window["metrics"]["volume_base"]["unit"] == "base"
        assert window["metrics"]["trade_count"]["inputs"] == 2
        # This process has just started: it saw only part of each window, and says so.
        assert window["complete"] is False
        assert Decimal(window["coverage_s"]["trades"]) < window_s
        assert Decimal(window["coverage_s"]["samples"]) < window_s
    assert Decimal(body["windows"]["10s"]["metrics"]["mid_price"]["value"]) == Decimal("65000.5")


def test_one_window_of_the_consolidated_book_by_default_with_a_slash_pair(market: Feed, alice: Persona) -> None:
    body = alice.client().get("/api/hft/microstructure/BTC/USDT", {"window": "1m"}).json()
    assert (body["venue"], body["book"]) == ("consolidated", "consolidated:BTC-USDT")
    assert list(body["windows"]) == ["1m"]
    assert Decimal(body["windows"]["1m"]["metrics"]["vwap_price"]["value"]).quantize(Decimal("0.01")) == Decimal(
        "65000.67"
    )


def test_a_resynchronising_book_is_flagged_and_has_no_book_metrics(market: Feed, alice: Persona) -> None:
    market.stale()
    get_microstructure().tick(time.time_ns())
    body = alice.client().get(URL, {"venue": "okx", "window": "10s"}).json()
    assert body["stale"] is True
    metrics = body["windows"]["10s"]["metrics"]
    assert metrics["mid_price"]["value"] is None
    assert metrics["mid_price"]["reason"]
    assert metrics["trade_count"]["value"] == 2


def test_the_free_tier_lacks_microstructure(market: Feed, bob: Persona) -> None:
    for url in (URL, HISTORY + "?metric=spread_bps"):
        response = bob.client().get(url)
        assert response.status_code == 403
        assert response.json()["code"] == "feature_not_in_tier"


@pytest.mark.parametrize(
    ("url", "params", "status", "code"),
    [
        ("/api/hft/microstructure/NOPE-USD", {}, 404, "unknown_pair"),
        (URL, {"venue": "kraken"}, 404, "unknown_venue"),
        (URL, {"window": "2m"}, 400, "unknown_window"),
        ("/api/hft/microstructure/ETH-USDT", {}, 503, "book_not_available"),
    ],
)
def test_bad_requests_get_coded_errors(
    market: Feed, alice: Persona, url: str, params: dict[str, str], status: int, code: str
) -> None:
    response = alice.client().get(url, params)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def test_a_warm_live_read_makes_no_sql_query(
    market: Feed, alice: Persona, django_assert_num_queries: pytest.FixtureDef
) -> None:
    client = alice.client()
    assert client.get(URL).status_code == 200  # warms the key cache and the catalogue
    with django_assert_num_queries(0):
        assert client.get(URL).status_code == 200


def bars(venue: str, metric: str, start: int, values: list[str | None], interval: str = "1s") -> None:
    instrument = Instrument.objects.get(symbol="BTC-USDT")
    step = 1 if interval == "1s" else 60
    MetricBar.objects.bulk_create(
        MetricBar(
            instrument=instrument,
            venue=venue,
            interval=interval,
            ts=datetime.fromtimestamp(start + i * step, tz=UTC),
            metric=metric,
            value=None if v is None else Decimal(v),
        )
        for i, v in enumerate(values)
    )


def test_history_serves_one_metric_of_one_book_in_range_oldest_first(alice: Persona) -> None:
    start = int(time.time()) - 100
    bars("consolidated", "spread_bps", start, ["1.5", "2.25", None, "0", "3"])
    bars("okx", "spread_bps", start, ["9", "9", "9", "9", "9"])
    bars("consolidated", "mid_price", start, ["65000.5"] * 5)
    params = {"metric": "spread_bps", "interval": "1s", "from": str(start * S), "to": str((start + 3) * S)}
    response = alice.client().get(HISTORY, params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [(b["ts_ns"], b["value"]) for b in body["bars"]] == [
        (start * S, "1.5"),
        ((start + 1) * S, "2.25"),
        ((start + 2) * S, None),
        ((start + 3) * S, "0"),
    ]
    assert (body["has_more"], body["next_from_ns"]) == (False, None)
    okx = alice.client().get(HISTORY, {**params, "venue": "okx"}).json()
    assert {b["value"] for b in okx["bars"]} == {"9"}


def test_history_pages_by_limit_and_accepts_iso_times(alice: Persona) -> None:
    start = int(time.time()) - 1000
    bars("consolidated", "volume_base", start, [str(i) for i in range(5)], interval="1m")
    iso = datetime.fromtimestamp(start, tz=UTC).isoformat()
    client = alice.client()
    first = client.get(HISTORY, {"metric": "volume_base", "interval": "1m", "from": iso, "limit": 2}).json()
    assert [b["value"] for b in first["bars"]] == ["0", "1"]
    assert first["has_more"] is True
    rest = client.get(HISTORY, {"metric": "volume_base", "interval": "1m", "from": first["next_from_ns"]}).json()
    assert [b["value"] for b in rest["bars"]] == ["2", "3", "4"]
    assert rest["has_more"] is False


def test_history_limit_is_capped_by_the_setting(alice: Persona, settings: pytest.FixtureDef) -> None:
    settings.HFT_MICRO_HISTORY_MAX_ROWS = 3
    start = int(time.time()) - 100
    bars("consolidated", "spread_bps", start, ["1"] * 5)
    query = {"metric": "spread_bps", "interval": "1s", "from": str(start * S), "limit": 100}
    body = alice.client().get(HISTORY, query).json()
    assert (len(body["bars"]), body["limit"], body["has_more"]) == (3, 3, True)


def test_history_of_an_unknown_metric_lists_the_known_ones(alice: Persona) -> None:
    response = alice.client().get(HISTORY, {"metric": "vibes"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_metric"
    assert "spread_bps" in body["detail"]["metrics"]
    assert "slippage_bps.buy.1" in body["detail"]["metrics"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"metric": "spread_bps", "from": "yesterday"}, "invalid_time_range"),
        ({"metric": "spread_bps", "from": "2000", "to": "1000"}, "invalid_time_range"),
        # Bounds no timestamp can hold were a 500 (datetime overflow, int() of 5,000 digits): now a 400.
        ({"metric": "spread_bps", "to": "9" * 30}, "invalid_time_range"),
        ({"metric": "spread_bps", "from": "-" + "9" * 25}, "invalid_time_range"),
        ({"metric": "spread_bps", "to": "9" * 5000}, "invalid_time_range"),
        ({"metric": "spread_bps", "from": "0001-01-01T00:00:00+14:00"}, "invalid_time_range"),
        ({"metric": "spread_bps", "interval": "5m"}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
def test_history_bad_parameters_get_coded_errors(alice: Persona, params: dict[str, str], code: str) -> None:
    response = alice.client().get(HISTORY, params)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_history_up_to_an_early_instant_starts_at_the_epoch(alice: Persona) -> None:
    # The default `from` is `limit` bars before `to`; before the epoch it would be a negative time.
    body = alice.client().get(HISTORY, {"metric": "spread_bps", "to": "5"}).json()
    assert (body["from_ns"], body["to_ns"], body["bars"]) == (0, 5, [])


def test_a_warm_history_read_is_one_query(alice: Persona, django_assert_num_queries: pytest.FixtureDef) -> None:
    bars("consolidated", "spread_bps", int(time.time()) - 120, ["1"], interval="1m")
    client = alice.client()
    assert client.get(HISTORY, {"metric": "spread_bps"}).status_code == 200  # 1 m bars by default
    with django_assert_num_queries(1):
        assert len(client.get(HISTORY, {"metric": "spread_bps"}).json()["bars"]) == 1
