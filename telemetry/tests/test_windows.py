"""Recording, flushing and reading back windowed HDR statistics in one process (memory store)."""

from __future__ import annotations

import random

import pytest

from telemetry import recorder as recorder_module
from telemetry.hdr import Stats
from telemetry.layout import HIGHEST_NS, NS_PER_S
from telemetry.recorder import FOLD_CHUNK, WindowedRecorder
from telemetry.stores import MemoryStore
from telemetry.tests.conftest import Clock
from telemetry.windows import WindowStats, read_buckets, read_windows

NS = "test"


def recorder_on(store: MemoryStore, clock: Clock, **options: object) -> WindowedRecorder:
    return WindowedRecorder(NS, lambda: store, clock=clock, **options)


def windows(store: MemoryStore, clock: Clock, series: str = "s") -> dict[str, WindowStats]:
    return {w.window: w for w in read_windows(store, NS, [series], clock())[series]}


def hdr_top(value_ns: int) -> int:
    """The top of the HDR bucket (3 significant digits, 1 ns unit) that holds `value_ns`."""
    width = 1 << max(0, value_ns.bit_length() - 11)
    return value_ns // width * width + width - 1


def nearest_rank(sorted_values: list[int], percentile: float) -> int:
    rank = max(1, int(percentile * len(sorted_values) / 100 + 0.5))
    return sorted_values[rank - 1]


def test_percentiles_below_2048_ns_are_exact(clock: Clock) -> None:
    store = MemoryStore()
    recorder = recorder_on(store, clock)
    values = list(range(1, 1001))
    random.Random(1).shuffle(values)
    for value in values:
        recorder.record("s", value)
    recorder.flush()
    assert windows(store, clock)["1m"].stats == Stats(
        count=1000, p50_ns=500, p95_ns=950, p99_ns=990, p999_ns=999, max_ns=1000
    )


def test_percentiles_above_2048_ns_are_the_top_of_their_hdr_bucket(clock: Clock) -> None:
    store = MemoryStore()
    recorder = recorder_on(store, clock)
    rng = random.Random(7)
    values = sorted(rng.randrange(20_000, 40_000_000) for _ in range(20_000))  # 20 µs to 40 ms
    for value in values:
        recorder.record("s", value)
    recorder.flush()
    stats = windows(store, clock)["5m"].stats
    assert stats.count == len(values)
    for percentile, got in [(50, stats.p50_ns), (95, stats.p95_ns), (99, stats.p99_ns), (99.9, stats.p999_ns)]:
        exact = nearest_rank(values, percentile)
        assert got == hdr_top(exact)
        assert exact <= got <= exact * 1.001  # never below the true value, within 0.1%
    assert stats.max_ns == hdr_top(values[-1])


def test_windows_roll_over_as_time_passes(clock: Clock) -> None:
    store = MemoryStore()
    recorder = recorder_on(store, clock)
    for value in (1000, 2000, 3000):
        recorder.record("s", value)
    recorder.flush()
    assert [w.stats.count for w in windows(store, clock).values()] == [3, 3, 3]

    clock.advance(65)  # the 10 s slot holding them has left 1 m; a new value joins every window
    recorder.record("s", 500)
    recorder.flush()
    counts = {name: w.stats.count for name, w in windows(store, clock).items()}
    assert counts == {"1m": 1, "5m": 4, "1h": 4}
    assert windows(store, clock)["1m"].stats.max_ns == 500

    clock.advance(300)  # past 5 m; the hour still holds all four
    recorder.flush()
    assert {name: w.stats.count for name, w in windows(store, clock).items()} == {"1m": 0, "5m": 0, "1h": 4}
    assert windows(store, clock)["5m"].stats.p50_ns is None

    clock.advance(3600)
    assert {name: w.stats.count for name, w in windows(store, clock).items()} == {"1m": 0, "5m": 0, "1h": 0}


def test_a_window_is_the_current_slot_and_the_complete_ones_before_it(clock: Clock) -> None:
    store = MemoryStore()
    clock.advance(7)  # 7 s into a 10 s slot and into a 5 min block
    stats = windows(store, clock)
    assert stats["1m"].since_ns == clock() - 7 * NS_PER_S - 50 * NS_PER_S  # 5 complete slots + this one
    assert stats["5m"].since_ns == clock() - 7 * NS_PER_S - 290 * NS_PER_S
    assert stats["1h"].since_ns == clock() - 7 * NS_PER_S - 3300 * NS_PER_S  # 11 complete blocks + this one
    assert [w.length_s for w in stats.values()] == [60, 300, 3600]


def test_values_recorded_just_before_a_slot_ends_count_in_that_slot(clock: Clock) -> None:
    store = MemoryStore()
    recorder = recorder_on(store, clock)
    clock.advance(9.9)
    recorder.record("s", 100)
    clock.advance(0.2)  # the slot is over before the flush
    recorder.record("s", 200)
    recorder.flush()
    assert windows(store, clock)["1m"].stats.count == 2
    clock.advance(55)  # the first slot (and only it) has left the minute
    assert windows(store, clock)["1m"].stats.count == 1


def test_out_of_range_values_are_clamped_not_lost(clock: Clock) -> None:
    store = MemoryStore()
    recorder = recorder_on(store, clock)
    recorder.record("s", -5)  # two hosts' clocks disagreeing
    recorder.record("s", 10 * HIGHEST_NS)
    recorder.flush()
    stats = windows(store, clock)["1m"].stats
    assert stats.count == 2
    assert stats.p50_ns == 0
    assert stats.max_ns is not None
    assert stats.max_ns >= HIGHEST_NS


def test_prometheus_counters_are_exact_at_the_bucket_bounds(clock: Clock) -> None:
    store = MemoryStore()
    recorder = recorder_on(store, clock)
    for value in (10_000, 10_001, 50_000, 999_999, 2 * NS_PER_S):
        recorder.record("s", value)
    recorder.flush()
    recorder.record("s", 1)  # a second flush adds to the same counters
    recorder.flush()
    buckets = read_buckets(store, NS)["s"]
    cumulative = dict(buckets.buckets)
    assert cumulative[1e-05] == 2  # 1 ns and exactly 10 µs: le is "less than or equal"
    assert cumulative[2.5e-05] == 3
    assert cumulative[5e-05] == 4
    assert cumulative[0.001] == 5
    assert cumulative[1.0] == 5
    assert cumulative[float("inf")] == 6
    assert buckets.count == 6
    assert buckets.sum_s == pytest.approx((10_000 + 10_001 + 50_000 + 999_999 + 2 * NS_PER_S + 1) / NS_PER_S)


def test_flush_with_nothing_recorded_writes_nothing(clock: Clock) -> None:
    store = MemoryStore()
    recorder_on(store, clock).flush()
    assert read_buckets(store, NS) == {}
    assert windows(store, clock)["1h"].stats.count == 0


def test_a_failed_write_is_retried_by_the_next_flush(clock: Clock) -> None:
    store = MemoryStore()
    failing = {"on": True}

    class FlakyStore(MemoryStore):
        def apply(self, batch: object) -> None:
            if failing["on"]:
                raise ConnectionError("store down")
            store.apply(batch)

    recorder = WindowedRecorder(NS, FlakyStore, clock=clock)
    recorder.record("s", 700)
    with pytest.raises(ConnectionError):
        recorder.flush()
    failing["on"] = False
    recorder.flush()
    assert windows(store, clock)["1m"].stats.count == 1
    assert read_buckets(store, NS)["s"].count == 1


def test_a_long_store_outage_drops_finished_slots_but_keeps_the_counters(clock: Clock) -> None:
    store = MemoryStore()
    is_down = {"now": True}

    class DownStore(MemoryStore):
        def apply(self, batch: object) -> None:
            if is_down["now"]:
                raise ConnectionError("store down")
            store.apply(batch)

    recorder = WindowedRecorder(NS, DownStore, clock=clock)
    for _ in range(3):
        recorder.record("s", 700)
        with pytest.raises(ConnectionError):
            recorder.flush()
        clock.advance(10)
    assert len(recorder._live) == 3  # two 10 s slots (one in its grace period) and the 5 min block, at most
    is_down["now"] = False
    recorder.flush()
    stats = windows(store, clock)
    assert stats["1m"].stats.count == 2  # the first 10 s slot ended during the outage and was dropped
    assert stats["5m"].stats.count == 2
    assert stats["1h"].stats.count == 3  # its 5 min block was live throughout
    assert read_buckets(store, NS)["s"].count == 3


def test_a_paused_flush_folds_in_chunks_to_the_same_figures_and_keeps_what_arrives_meanwhile(clock: Clock) -> None:
    values = [random.Random(7).randrange(1, 5 * NS_PER_S) for _ in range(1000)]
    plain, chunked = MemoryStore(), MemoryStore()
    plain_recorder, chunked_recorder = recorder_on(plain, clock), recorder_on(chunked, clock)
    for value in values:
        plain_recorder.record("s", value)
        chunked_recorder.record("s", value)
    pauses: list[int] = []

    def pause() -> None:
        pauses.append(len(chunked_recorder._pending))
        chunked_recorder.record("s", 700)  # recording goes on during a pause: it waits for the next flush

    plain_recorder.flush()
    chunked_recorder.flush(pause=pause)
    assert pauses == [1000 - n * FOLD_CHUNK + (n - 1) for n in range(1, -(-1000 // FOLD_CHUNK))]
    assert windows(chunked, clock) == windows(plain, clock)
    assert read_buckets(chunked, NS) == read_buckets(plain, NS)
    chunked_recorder.flush()
    assert read_buckets(chunked, NS)["s"].count == 1000 + len(pauses)


def test_the_background_flush_pauses_between_chunks(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = recorder_on(MemoryStore(), clock)
    pauses: list[object] = []

    class Stop(BaseException):
        pass

    def flush(*, pause: object = None) -> None:
        pauses.append(pause)
        raise Stop  # ends the endless loop after one flush

    monkeypatch.setattr(recorder, "flush", flush)
    monkeypatch.setattr(recorder_module.time, "sleep", lambda seconds: None)
    with pytest.raises(Stop):
        recorder._flush_forever(2.0)
    assert pauses == [recorder_module.pause_between_chunks]
