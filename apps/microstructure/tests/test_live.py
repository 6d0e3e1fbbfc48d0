"""Live windows fed from the hub: trades and samples meet at one scale per book, venue and consolidated."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from apps.microstructure.domain.metrics import METRIC_NAMES
from apps.microstructure.services.live import LiveSettings, MicrostructureService, get_microstructure
from apps.microstructure.tests.conftest import Feed, S
from apps.orderbook.domain.events import Trade
from apps.orderbook.services.market import get_hub, reset_market
from apps.orderbook.tests.feeding import wait_for_hub

OKX = "okx:BTC-USDT"
CONSOLIDATED = "consolidated:BTC-USDT"
MS = 1_000_000


def service(cache_ms: int = 0) -> MicrostructureService:
    return MicrostructureService(get_hub(), LiveSettings(100 * MS, 330 * S, 400, cache_ms * MS))


def value(results: dict, window_s: int, name: str) -> object:
    raw = results[window_s].as_json()["metrics"][name]["value"]
    return Decimal(raw) if isinstance(raw, str) else raw


def fed(feed: Feed, live: MicrostructureService, t0: int) -> None:
    """A 65000.0 / 65001.0 book (1.0 and 2.0 BTC), a buy of 0.5 at the ask and a sell of 0.25 at the bid."""
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    live.tick(t0)
    feed.trade(650_010, 50_000_000, "buy", t0 + 1 * MS)
    feed.trade(650_000, 25_000_000, "sell", t0 + 2 * MS)
    live.tick(t0 + 100 * MS)


def test_venue_and_consolidated_windows_agree_on_trades_despite_different_exponents(feed: Feed) -> None:
    live = service()
    t0 = time.time_ns()
    fed(feed, live, t0)
    for book in (OKX, CONSOLIDATED):
        results = live.metrics(book, (10, 60, 300), t0 + 200 * MS)
        for window_s in (10, 60, 300):
            assert value(results, window_s, "trade_count") == 2
            assert value(results, window_s, "volume_base") == Decimal("0.75")
            assert value(results, window_s, "buy_volume_base") == Decimal("0.5")
            # (65001 * 0.5 + 65000 * 0.25) / 0.75, whatever places the formula rounds to
            assert abs(value(results, window_s, "vwap_price") - Decimal("65000.6666666667")) < Decimal("0.0001")
            assert value(results, window_s, "best_bid_price") == Decimal("65000")
            assert value(results, window_s, "spread_price") == Decimal("1")
            assert set(results[window_s].metrics) == set(METRIC_NAMES)


def test_a_trade_takes_the_mid_of_the_last_sample_before_it(feed: Feed) -> None:
    live = service()
    t0 = time.time_ns()
    fed(feed, live, t0)
    # Both trades were half a dollar from a 65000.5 mid: 2 * 0.5 / 65000.5 = 1.538e-5 = 0.1538 bps.
    effective = value(live.metrics(OKX, (10,), t0 + 200 * MS), 10, "effective_spread_bps")
    assert Decimal("0.1538") < effective < Decimal("0.1539")


def test_a_stale_book_is_not_read_as_the_market(feed: Feed) -> None:
    live = service()
    t0 = time.time_ns()
    fed(feed, live, t0)
    feed.stale()
    live.tick(t0 + 200 * MS)
    results = live.metrics(OKX, (10,), t0 + 300 * MS)
    assert value(results, 10, "best_bid_price") is None
    assert results[10].metrics["best_bid_price"].reason
    assert value(results, 10, "trade_count") == 2  # the trades it did print still count


def test_trades_of_a_book_the_process_has_not_seen_are_counted_not_placed(feed: Feed) -> None:
    live = service()
    t0 = time.time_ns()
    feed.trade(650_010, 50_000_000, "buy", t0)
    live.tick(t0 + 100 * MS)
    assert (live.trades_seen, live.trades_unplaced) == (1, 1)
    assert live.books() == []
    with pytest.raises(KeyError):
        live.metrics(OKX, (10,))


def test_trades_older_than_the_window_drop_out(feed: Feed) -> None:
    live = service()
    t0 = time.time_ns()
    fed(feed, live, t0)
    live.tick(t0 + 301 * S)
    results = live.metrics(OKX, (10, 300), t0 + 301 * S)
    assert value(results, 300, "trade_count") == 0
    assert value(results, 300, "volume_base") in (None, Decimal(0))


def test_a_result_is_shared_for_the_cache_period_then_recomputed(feed: Feed) -> None:
    live = service(cache_ms=200)
    t0 = time.time_ns()
    fed(feed, live, t0)
    first = live.metrics(OKX, (10,), t0 + 200 * MS)[10]
    assert live.metrics(OKX, (10,), t0 + 399 * MS)[10] is first
    assert live.metrics(OKX, (10,), t0 + 400 * MS)[10] is not first


def test_the_process_service_follows_a_new_hub(feed: Feed) -> None:
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    first = get_microstructure()
    assert get_microstructure() is first
    assert OKX in first.books()  # the first tick ran at creation: the fed book already has a window
    reset_market()
    assert get_microstructure() is not first
    assert get_microstructure().hub is get_hub()


def test_a_preloaded_trade_whose_live_copy_arrives_after_the_preload_is_taken_once(feed: Feed) -> None:
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    live = service()
    t0 = time.time_ns()
    early = Trade("okx", "BTC-USDT", "a", 650_010, 50_000_000, "buy", t0 - 2 * S, t0 - 2 * S)
    late = Trade("okx", "BTC-USDT", "b", 650_000, 25_000_000, "sell", t0 - 1 * S, t0 - 1 * S)
    live.add_trade(early)  # live before the preload
    live.preload([early, late], since_ns=t0 - 300 * S, symbols=["BTC-USDT"])
    live.add_trade(late)  # live after it: published before the listener was added, delivered after
    live.tick(t0)
    live.add_trade(late)  # once more, a tick later
    live.tick(t0 + 100 * MS)
    assert live.trades_seen == 2
    assert value(live.metrics(OKX, (10,), t0 + 200 * MS), 10, "trade_count") == 2


def test_with_redis_a_new_process_service_starts_with_the_recent_trades(market_redis: str) -> None:
    feed = Feed()
    feed.book([(650_000, 100_000_000)], [(650_010, 200_000_000)])
    now = time.time_ns()
    feed.trade(650_010, 50_000_000, "buy", now - 400 * S)  # older than any window keeps
    feed.trade(650_010, 50_000_000, "buy", now - 20 * S)
    feed.trade(650_000, 25_000_000, "sell", now - 2 * S)
    wait_for_hub(OKX, 1)
    live = get_microstructure()  # a process that was not listening when those trades happened
    feed.trade(650_000, 10_000_000, "sell", time.time_ns())  # and one live
    deadline = time.monotonic() + 5
    while live.trades_seen < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        live.tick(time.time_ns())
    results = live.metrics(OKX, (10, 60), time.time_ns())
    assert value(results, 60, "trade_count") == 3
    assert value(results, 60, "volume_base") == Decimal("0.85")
    assert value(results, 10, "volume_base") == Decimal("0.35")
    # The preload reaches back the whole kept span: every trade of the minute is there, though only the
    # samples since this process started.
    assert results[60].trades_covered_ns == 60 * S
    assert results[60].samples_covered_ns < 60 * S
    assert not results[60].is_complete


def test_a_window_restarted_by_a_precision_change_covers_only_what_came_since(feed: Feed) -> None:
    live = service()
    t0 = time.time_ns()
    fed(feed, live, t0)
    assert live.metrics(OKX, (10,), t0 + 2 * S)[10].trades_covered_ns == 2 * S  # since its first tick

    finer = Feed(venue_exp=(2, 8))  # the venue's listing now quotes one more price decimal
    finer.book([(6_500_000, 100_000_000)], [(6_500_100, 200_000_000)])
    live.tick(t0 + 3 * S)  # the sampler meets the new scale: the window starts again, empty

    result = live.metrics(OKX, (10,), t0 + 4 * S)[10]
    assert (result.trades_covered_ns, result.samples_covered_ns) == (1 * S, 1 * S)
    assert result.metrics["trade_count"].value == 0
