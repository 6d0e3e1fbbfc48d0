"""The recorder: trades once each with exact prices, 1 s bars every second, 1 m bars each minute, pruning,
one leased runner per deployment, and `manage.py runmicro`."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import OperationalError

from apps.microstructure import tasks
from apps.microstructure.models import MetricBar, Trade
from apps.microstructure.services.live import get_microstructure
from apps.microstructure.services.reads import known_bar_metrics
from apps.microstructure.services.recorder import MicroRecorder, prune_metric_bars, to_column
from apps.microstructure.services.supervision import is_recorder_lapsed, run_leased_recorder
from apps.microstructure.tests.conftest import Feed, S

pytestmark = pytest.mark.django_db
MINUTE = 60 * S


def recorder_with_market(feed: Feed) -> tuple[MicroRecorder, int]:
    """A recorder over OKX BTC-USDT at 65000.0 / 65001.0; returns it and a time 58.5 s into a minute."""
    live = get_microstructure()
    recorder = MicroRecorder(live)
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    t0 = (time.time_ns() // MINUTE - 1) * MINUTE + 58 * S + S // 2
    live.tick(t0 - 5 * S)
    return recorder, t0


def test_trades_are_written_once_with_exact_prices(feed: Feed) -> None:
    recorder, t0 = recorder_with_market(feed)
    feed.trade(650_010, 50_000_000, "buy", t0, trade_id="17")
    feed.trade(650_000, 123_456_789, "sell", t0 + 1, trade_id="18")
    assert recorder.flush_trades(t0) == 2
    feed.trade(650_010, 50_000_000, "buy", t0, trade_id="17")  # the venue sends it again (a resubscription)
    assert recorder.flush_trades(t0 + S) == 1
    rows = list(Trade.objects.order_by("trade_id").values_list("trade_id", "price", "qty", "aggressor"))
    assert rows == [
        ("17", Decimal("65001.0"), Decimal("0.5"), "buy"),
        ("18", Decimal("65000.0"), Decimal("1.23456789"), "sell"),
    ]
    first = Trade.objects.get(trade_id="17")
    assert (first.venue.slug, first.instrument.symbol, first.receive_ts_ns) == ("okx", "BTC-USDT", t0)


def test_trades_survive_a_database_error_while_loading_the_reference_ids(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, t0 = recorder_with_market(feed)
    feed.trade(650_010, 50_000_000, "buy", t0, trade_id="17")

    def database_down(now_ns: int) -> None:
        raise OperationalError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(recorder.ids, "load", database_down)
        with pytest.raises(OperationalError):
            recorder.flush_trades(t0)
    assert recorder.flush_trades(t0 + S) == 1  # the trade waited for the database, it was not dropped
    assert list(Trade.objects.values_list("trade_id", flat=True)) == ["17"]


def test_a_venue_without_trade_ids_gets_a_derived_one_that_dedupes() -> None:
    kraken = Feed("kraken", "BTC-USD", (1, 8))
    recorder = MicroRecorder(get_microstructure())
    ts = time.time_ns()
    for _ in range(2):  # delivered twice (a reconnect): still one row
        kraken.trade(650_010, 50_000_000, "sell", ts, trade_id="")
    recorder.flush_trades(ts)
    [row] = Trade.objects.all()
    assert row.trade_id.startswith("~")
    assert row.aggressor == "sell"


def test_one_second_bars_each_second_and_one_minute_bars_at_the_minute(feed: Feed) -> None:
    recorder, t0 = recorder_with_market(feed)
    names = len(known_bar_metrics())
    recorder.tick(t0)  # 58.5 s: the 1 s bars ending at 58 s
    recorder.tick(t0 + S)  # 59.5 s: at 59 s
    recorder.tick(t0 + 2 * S - S // 4)  # 00.25 s of the next minute: 1 s bars at 00 and the 1 m bars
    books = 2  # okx:BTC-USDT and consolidated:BTC-USDT
    minute_s = (t0 + 2 * S) // MINUTE * 60
    one_s = MetricBar.objects.filter(interval="1s")
    assert one_s.count() == 3 * names * books
    assert {int(ts.timestamp()) for ts in one_s.values_list("ts", flat=True)} == {minute_s - 2, minute_s - 1, minute_s}
    one_m = MetricBar.objects.filter(interval="1m")
    assert one_m.count() == names * books
    assert {int(ts.timestamp()) for ts in one_m.values_list("ts", flat=True)} == {minute_s}


def test_one_second_bars_name_every_metric_and_hold_the_ten_second_values(feed: Feed) -> None:
    recorder, t0 = recorder_with_market(feed)
    feed.trade(650_010, 50_000_000, "buy", t0 - 2 * S)
    feed.trade(650_000, 25_000_000, "sell", t0 - 20 * S)  # outside the 10 s window of the bar at 58 s
    recorder.tick(t0)
    one_s = dict(MetricBar.objects.filter(interval="1s", venue="okx").values_list("metric", "value"))
    assert set(one_s) == set(known_bar_metrics())
    assert one_s["volume_base"] == Decimal("0.5")
    assert one_s["spread_price"] == Decimal("1")
    assert one_s["trade_count"] == 1


def test_one_minute_bars_cover_sixty_seconds(feed: Feed) -> None:
    recorder, t0 = recorder_with_market(feed)
    recorder.tick(t0)
    feed.trade(650_010, 50_000_000, "buy", t0 - 2 * S)
    feed.trade(650_000, 25_000_000, "sell", t0 - 20 * S)
    recorder.tick(t0 + 2 * S - S // 4)
    bar = MetricBar.objects.get(interval="1m", venue="okx", metric="volume_base")
    assert bar.value == Decimal("0.75")
    consolidated = MetricBar.objects.get(interval="1m", venue="consolidated", metric="vwap_price")
    assert consolidated.value is not None
    assert abs(consolidated.value - Decimal("65000.6667")) < Decimal("0.001")


def test_values_that_do_not_fit_the_column_are_stored_as_null() -> None:
    assert to_column(Decimal("1.5")) == Decimal("1.500000000000000000")
    assert to_column(7) == Decimal(7)
    assert to_column(Decimal("1e30")) is None
    assert to_column(Decimal("NaN")) is None
    assert to_column(None) is None


def test_prune_drops_bars_past_their_retention(settings: pytest.FixtureDef) -> None:
    from apps.orderbook.models import Instrument

    settings.HFT_MICRO_BARS_1S_KEEP_S = 3600
    settings.HFT_MICRO_BARS_1M_KEEP_S = 86400
    now_s = int(time.time())
    instrument = Instrument.objects.get(symbol="BTC-USDT")
    for interval, age_s in (("1s", 3601), ("1s", 3599), ("1m", 86401), ("1m", 3601)):
        MetricBar.objects.create(
            instrument=instrument,
            venue="consolidated",
            interval=interval,
            ts=datetime.fromtimestamp(now_s - age_s, tz=UTC),
            metric="spread_bps",
            value=Decimal(1),
        )
    assert prune_metric_bars(now_s * S) == 2
    kept = sorted((i, now_s - int(ts.timestamp())) for i, ts in MetricBar.objects.values_list("interval", "ts"))
    assert kept == [("1m", 3601), ("1s", 3599)]


def test_prune_drops_trades_past_their_retention(settings: pytest.FixtureDef) -> None:
    from apps.orderbook.models import Instrument, Venue

    settings.HFT_MICRO_TRADES_KEEP_S = 86400
    now_ns = time.time_ns()
    instrument, venue = Instrument.objects.get(symbol="BTC-USDT"), Venue.objects.first()
    for trade_id, age_s in (("old", 86401), ("young", 86399)):
        Trade.objects.create(
            venue=venue,
            instrument=instrument,
            trade_id=trade_id,
            price=Decimal("65000"),
            qty=Decimal("0.1"),
            aggressor="buy",
            receive_ts_ns=now_ns - age_s * S,
        )
    assert prune_metric_bars(now_ns) == 1
    assert list(Trade.objects.values_list("trade_id", flat=True)) == ["young"]
    settings.HFT_MICRO_TRADES_KEEP_S = 0  # 0 keeps them
    assert prune_metric_bars(now_ns + 10 * 86400 * S) == 0


def test_runmicro_records_bars_of_the_books_it_sees(feed: Feed, settings: pytest.FixtureDef) -> None:
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    call_command("runmicro", "--seconds", "1.6")
    assert MetricBar.objects.filter(interval="1s", venue="okx").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_leased_recorder_per_deployment(market_redis: str, feed: Feed) -> None:
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    outcome: list[str] = []
    stop = threading.Event()
    runner = threading.Thread(target=lambda: outcome.append(run_leased_recorder(stop=stop, max_seconds=30)))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while is_recorder_lapsed() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not is_recorder_lapsed()
        assert run_leased_recorder(max_seconds=1) == "the microstructure recorder is held elsewhere"
        deadline = time.monotonic() + 10
        while not MetricBar.objects.filter(venue="okx").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert MetricBar.objects.filter(venue="okx", interval="1s").exists()
    finally:
        stop.set()
        runner.join(timeout=10)
    assert outcome == ["microstructure recorder stopped"]
    assert is_recorder_lapsed()  # released on the way out


def test_the_supervisor_starts_a_recorder_only_when_the_lease_lapsed(
    market_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.orderbook.services.market import redis_client
    from apps.orderbook.services.supervision import LEASE_PREFIX

    started: list[dict[str, object]] = []
    monkeypatch.setattr(tasks.run_micro_recorder_task, "apply_async", lambda **kw: started.append(kw))
    assert tasks.supervise_microstructure() is True
    assert started == [{"queue": "feeds"}]
    redis_client().set(LEASE_PREFIX + "microstructure", "elsewhere", px=5000)
    assert tasks.supervise_microstructure() is False
    assert len(started) == 1
