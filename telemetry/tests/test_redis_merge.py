"""Two processes' recorders meeting in a real Redis: slots merged by readers, counters summed, one lease."""

from __future__ import annotations

import pytest
import redis

from telemetry.layout import BLOCK_5M, SLOT_10S, slot_key
from telemetry.recorder import WindowedRecorder
from telemetry.stores import RedisStore
from telemetry.tests.conftest import Clock
from telemetry.windows import read_buckets, read_windows

pytestmark = pytest.mark.redis
NS = "test:lat"


def process(client: redis.Redis, clock: Clock, name: str, **options: object) -> WindowedRecorder:
    """A recorder as one web process would have it: its own id, the shared Redis."""
    store = RedisStore(client)
    return WindowedRecorder(NS, lambda: store, clock=clock, process_id=name, **options)


def test_histograms_of_two_processes_merge_into_one_distribution(redis_client: redis.Redis, clock: Clock) -> None:
    alpha = process(redis_client, clock, "alpha")
    beta = process(redis_client, clock, "beta")
    for value in range(1, 501):
        alpha.record("book|stage", value)
    for value in range(501, 1001):
        beta.record("book|stage", value)
    alpha.flush()
    beta.flush()
    key = slot_key(NS, "book|stage", SLOT_10S, SLOT_10S.index(clock()))
    assert sorted(redis_client.hkeys(key)) == [b"alpha", b"beta"]  # a field per process
    assert 3600 < redis_client.ttl(slot_key(NS, "book|stage", BLOCK_5M, BLOCK_5M.index(clock()))) <= BLOCK_5M.ttl_s

    reader = RedisStore(redis_client)
    for window in read_windows(reader, NS, ["book|stage"], clock())["book|stage"]:
        assert window.stats.count == 1000
        assert (window.stats.p50_ns, window.stats.p99_ns, window.stats.max_ns) == (500, 990, 1000)


def test_a_process_republishing_its_slot_replaces_only_its_own_field(redis_client: redis.Redis, clock: Clock) -> None:
    alpha = process(redis_client, clock, "alpha")
    beta = process(redis_client, clock, "beta")
    alpha.record("s", 10)
    beta.record("s", 20)
    alpha.flush()
    beta.flush()
    alpha.record("s", 30)  # the same slot again: alpha's field now holds 10 and 30
    alpha.flush()
    stats = read_windows(RedisStore(redis_client), NS, ["s"], clock())["s"][0].stats
    assert (stats.count, stats.max_ns) == (3, 30)


def test_windows_roll_over_across_processes(redis_client: redis.Redis, clock: Clock) -> None:
    alpha = process(redis_client, clock, "alpha")
    beta = process(redis_client, clock, "beta")
    alpha.record("s", 100)
    alpha.flush()
    clock.advance(70)
    beta.record("s", 200)
    beta.flush()
    counts = [w.stats.count for w in read_windows(RedisStore(redis_client), NS, ["s"], clock())["s"]]
    assert counts == [1, 2, 2]  # 1m holds beta's only; 5m and 1h both


def test_prometheus_counters_sum_over_processes(redis_client: redis.Redis, clock: Clock) -> None:
    alpha = process(redis_client, clock, "alpha")
    beta = process(redis_client, clock, "beta")
    alpha.record("free", 40_000)
    beta.record("free", 60_000)
    beta.record("pro", 5_000)
    alpha.flush()
    beta.flush()
    buckets = read_buckets(RedisStore(redis_client), NS)
    assert sorted(buckets) == ["free", "pro"]
    assert dict(buckets["free"].buckets)[5e-05] == 1
    assert dict(buckets["free"].buckets)[1e-04] == 2
    assert buckets["free"].count == 2
    assert buckets["free"].sum_s == pytest.approx(100e-6)
    assert buckets["pro"].count == 1


def test_replicated_series_are_kept_by_one_process_only(redis_client: redis.Redis, clock: Clock) -> None:
    """Every web process sees each published event; its own timestamps must count once, not per process."""

    def replicated(series: str) -> bool:
        return series.endswith("|exchange_to_receive")

    alpha = process(redis_client, clock, "alpha", is_replicated=replicated)
    beta = process(redis_client, clock, "beta", is_replicated=replicated)
    for recorder in (alpha, beta):
        for value in (1000, 2000, 3000):
            recorder.record("b|exchange_to_receive", value)  # the same three events, seen by both
        recorder.record("b|publish_to_edge", 50)  # each process's own hop
    alpha.flush()  # takes the lease
    beta.flush()
    reader = RedisStore(redis_client)
    stats = read_windows(reader, NS, ["b|exchange_to_receive", "b|publish_to_edge"], clock())
    assert stats["b|exchange_to_receive"][0].stats.count == 3
    assert stats["b|publish_to_edge"][0].stats.count == 2
    assert read_buckets(reader, NS)["b|exchange_to_receive"].count == 3

    redis_client.delete(f"{NS}:leader")  # alpha is gone: beta takes over
    beta.record("b|exchange_to_receive", 4000)
    beta.flush()
    assert read_windows(reader, NS, ["b|exchange_to_receive"], clock())["b|exchange_to_receive"][0].stats.count == 4
