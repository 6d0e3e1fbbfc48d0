"""Feed configuration, feed runners under leases (in process and in a real Celery worker), restarts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from apps.orderbook.exceptions import FeedConfigError
from apps.orderbook.models import Instrument, Listing
from apps.orderbook.services.feeds import parse_feeds
from apps.orderbook.services.market import build_runner, get_bus
from apps.orderbook.services.supervision import LEASE_PREFIX, lapsed_feeds, run_feed
from apps.orderbook.simvenue import SimulatedVenue
from conftest import start_celery_worker

ROOT = Path(__file__).resolve().parents[3]


def test_feed_entries_default_to_the_venues_public_endpoints() -> None:
    [binance, okx] = parse_feeds(
        '[{"venue": "binance", "instruments": ["btc/usdt", "ETH-USDT"]}, {"venue": "okx", "instruments": ["BTC-USDT"]}]'
    )
    assert binance.instruments == ("BTC-USDT", "ETH-USDT")
    assert binance.ws_url == "wss://stream.binance.com:9443"
    assert binance.rest_url == "https://api.binance.com"
    assert (okx.protocol, okx.ws_url) == ("okx", "wss://ws.okx.com:8443")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"venue": "binance"}', "JSON list"),
        ('[{"instruments": ["BTC-USDT"]}]', "'venue'"),
        ('[{"venue": "binance", "instruments": []}]', "non-empty list"),
        ('[{"venue": "mystery", "instruments": ["A-B"]}]', "unknown venue"),
        ('[{"venue": "mystery", "protocol": "binance", "instruments": ["A-B"]}]', "'ws_url' and 'rest_url'"),
    ],
)
def test_bad_feed_config_is_named(raw: str, message: str) -> None:
    with pytest.raises(FeedConfigError, match=message):
        parse_feeds(raw)


@pytest.mark.django_db
def test_instruments_named_in_feeds_are_created(settings: Any) -> None:
    feeds = parse_feeds(
        '[{"venue": "binance", "instruments": ["DOGE-USDT"], "price_decimals": 5, "size_decimals": 0},'
        ' {"venue": "newvenue", "protocol": "okx", "ws_url": "ws://127.0.0.1:1", "rest_url": "http://127.0.0.1:1",'
        ' "instruments": ["DOGE-USDT"]}]'
    )
    build_runner(feeds)
    doge = Instrument.objects.get(symbol="DOGE-USDT")
    assert (doge.base, doge.quote) == ("DOGE", "USDT")
    listings = {x.venue.slug: x for x in Listing.objects.filter(instrument=doge).select_related("venue")}
    assert listings["binance"].venue_symbol == "DOGEUSDT"
    assert (listings["binance"].price_exp, listings["binance"].size_exp) == (5, 0)
    assert listings["newvenue"].venue_symbol == "DOGE-USDT"
    assert doge.price_exp == 8  # the finest of its venues', for the consolidated book


@pytest.fixture
def sim_venue() -> Iterator[int]:
    """A simulated Binance venue on a loopback port, in its own thread and event loop."""
    loop = asyncio.new_event_loop()
    venue = SimulatedVenue({"BTCUSDT": "65000.00"}, rate_per_s=400, seed=7)
    port = loop.run_until_complete(venue.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    asyncio.run_coroutine_threadsafe(venue.stop(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def sim_feed(port: int) -> str:
    return orjson.dumps(
        [
            {
                "venue": "sim",
                "instruments": ["BTC-USDT"],
                "ws_url": f"ws://127.0.0.1:{port}",
                "rest_url": f"http://127.0.0.1:{port}",
            }
        ]
    ).decode()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_holder_per_feed_and_a_restart_continues_the_sequence(
    market_redis: str, sim_venue: int, settings: Any
) -> None:
    settings.HFT_FEEDS = sim_feed(sim_venue)
    settings.HFT_FEED_LEASE_MS = 3000
    client = redis.Redis.from_url(market_redis)
    name = "sim:BTC-USDT"
    assert lapsed_feeds(client, parse_feeds(settings.HFT_FEEDS)) == [name, "consolidator"]
    results: list[str] = []

    def hold() -> None:
        from django.db import connections

        try:
            results.append(run_feed(name, max_seconds=3))
        finally:
            connections.close_all()  # this thread's connection, so the test database can be dropped

    runner = threading.Thread(target=hold)
    runner.start()
    time.sleep(1.0)
    assert run_feed(name, max_seconds=1) == f"{name} is held elsewhere"
    assert client.get(LEASE_PREFIX + name) is not None
    runner.join(timeout=30)
    assert results == [f"{name} stopped"]
    assert client.get(LEASE_PREFIX + name) is None  # released on the way out
    _, first_latest = get_bus().bounds("sim:BTC-USDT")
    assert first_latest > 2
    # A new runner (a restart) continues the sequence: its reset is the next number, not 1.
    assert run_feed(name, max_seconds=2) == f"{name} stopped"
    events = get_bus().history("sim:BTC-USDT", first_latest, 1000)
    assert events[0].seq == first_latest + 1
    assert events[0].kind == "snapshot"
    seqs = [e.seq for e in get_bus().history("sim:BTC-USDT", 0, 100_000)]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_celery_worker_on_the_feeds_queue_runs_a_leased_feed(market_redis: str, sim_venue: int, settings: Any) -> None:
    worker = start_celery_worker(market_redis, queue="feeds", HFT_FEEDS=sim_feed(sim_venue))
    try:
        from celery import Celery

        Celery(broker=market_redis).send_task(
            "apps.orderbook.tasks.run_feed_task", args=["sim:BTC-USDT"], kwargs={"max_seconds": 6}, queue="feeds"
        )
        client = redis.Redis.from_url(market_redis)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and int(client.get("hft:md:seq:sim:BTC-USDT") or 0) < 3:
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            time.sleep(0.2)
        assert int(client.get("hft:md:seq:sim:BTC-USDT") or 0) >= 3
        assert client.get(LEASE_PREFIX + "sim:BTC-USDT") is not None  # held while it runs
    finally:
        worker.terminate()
        worker.wait(timeout=30)
