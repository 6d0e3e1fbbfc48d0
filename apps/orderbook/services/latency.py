"""Latency of the market-data path per book and stage: recorded cheaply here, merged across processes on read.

Stages, all integer ns between two timestamps of one event:

- `exchange_to_receive`: venue event time → our connector received it (host clocks may disagree);
- `receive_to_publish`: received → published on the bus;
- `publish_to_edge`: published → this web process's hub applied it;
- `edge_to_send`: hub applied → the stream wrote the frame to its last WebSocket;
- `publish_to_send`: published → that last write.

The first three come from the hub listener `record_book_event`; the stream calls `record_stage` for the
last two. Histograms live in `telemetry` (shared with the tiers app's HTTP timings); this module only
names the series (`<book>|<stage>`). The first two stages are properties of the event, identical in
every web process, so one process at a time (a lease) records them; the others are per process, summed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from apps.orderbook.domain.events import BookEvent
from apps.orderbook.services.hub import RESET
from telemetry.configured import configured_recorder, current_store, forget
from telemetry.hdr import Stats
from telemetry.windows import Buckets, WindowStats, read_buckets, read_windows

EXCHANGE_TO_RECEIVE = "exchange_to_receive"
RECEIVE_TO_PUBLISH = "receive_to_publish"
PUBLISH_TO_EDGE = "publish_to_edge"
EDGE_TO_SEND = "edge_to_send"
PUBLISH_TO_SEND = "publish_to_send"
STAGE_ORDER = (EXCHANGE_TO_RECEIVE, RECEIVE_TO_PUBLISH, PUBLISH_TO_EDGE, EDGE_TO_SEND, PUBLISH_TO_SEND)
STAGES = frozenset(STAGE_ORDER)
EVENT_STAGES = frozenset({EXCHANGE_TO_RECEIVE, RECEIVE_TO_PUBLISH})
NAMESPACE = "hft:lat"
SEPARATOR = "|"

REPORT_CACHE_S = 1.0

# The hub's clock for `publish_to_edge` (wall clock: publish time comes from another process).
edge_clock: Callable[[], int] = time.time_ns
_reports: dict[str, tuple[float, dict[str, Any]]] = {}  # book → (monotonic s, report)


def _is_event_stage(series: str) -> bool:
    return series.rpartition(SEPARATOR)[2] in EVENT_STAGES


recorder = configured_recorder(NAMESPACE, is_replicated=_is_event_stage)


def record_stage(book: str, stage: str, value_ns: int) -> None:
    """Count one duration of `stage` on `book` (integer ns). Thread-safe, never blocks, no I/O."""
    if stage not in STAGES:
        raise ValueError(f"unknown latency stage {stage!r}")
    recorder.record(f"{book}{SEPARATOR}{stage}", value_ns)


def record_book_event(event: BookEvent) -> None:
    """The hub listener: the stages an applied event's own timestamps and its arrival here tell."""
    if event.reason == RESET:
        return  # a rebuilt replica, not one published event: its timestamps measure no hop
    now_ns = edge_clock()
    book = event.book
    if event.exchange_ts_ns is not None:
        recorder.record(f"{book}{SEPARATOR}{EXCHANGE_TO_RECEIVE}", event.receive_ts_ns - event.exchange_ts_ns)
    recorder.record(f"{book}{SEPARATOR}{RECEIVE_TO_PUBLISH}", event.publish_ts_ns - event.receive_ts_ns)
    recorder.record(f"{book}{SEPARATOR}{PUBLISH_TO_EDGE}", now_ns - event.publish_ts_ns)


def book_latency(book: str, now_ns: int | None = None) -> dict[str, list[WindowStats]]:
    """Every stage's window statistics for one book, this process's latest values included."""
    recorder.flush()
    now_ns = time.time_ns() if now_ns is None else now_ns
    series = [f"{book}{SEPARATOR}{stage}" for stage in STAGE_ORDER]
    by_series = read_windows(current_store(), NAMESPACE, series, now_ns)
    return {stage: by_series[s] for stage, s in zip(STAGE_ORDER, series, strict=True)}


def micros(value_ns: int | None) -> str | None:
    """Nanoseconds as a decimal string of microseconds, nothing lost: 1234567 → "1234.567"."""
    if value_ns is None:
        return None
    return f"{value_ns // 1000}.{value_ns % 1000:03d}"


def stats_json(stats: Stats) -> dict[str, Any]:
    return {
        "count": stats.count,
        "p50_us": micros(stats.p50_ns),
        "p95_us": micros(stats.p95_ns),
        "p99_us": micros(stats.p99_ns),
        "p999_us": micros(stats.p999_ns),
        "max_us": micros(stats.max_ns),
    }


def latency_report(symbol: str, venue: str, book: str) -> dict[str, Any]:
    """The body of GET /api/hft/latency/{pair}, computed at most once per REPORT_CACHE_S per book and process:
    an hour of every process's slots is some 40 ms of decoding per stage and process, too much per request."""
    cached = _reports.get(book)
    if cached is not None and time.monotonic() - cached[0] < REPORT_CACHE_S:
        return cached[1]
    now_ns = time.time_ns()
    stages = {
        stage: {w.window: {"window_s": w.length_s, "since_ns": w.since_ns, **stats_json(w.stats)} for w in windows}
        for stage, windows in book_latency(book, now_ns).items()
    }
    report = {"pair": symbol, "venue": venue, "book": book, "as_of_ns": now_ns, "stages": stages}
    _reports[book] = (time.monotonic(), report)
    return report


def stage_buckets() -> list[tuple[str, str, Buckets]]:
    """(book, stage, cumulative buckets) of every series, for Prometheus."""
    recorder.flush()
    rows = []
    for series, buckets in read_buckets(current_store(), NAMESPACE).items():
        book, _, stage = series.rpartition(SEPARATOR)
        rows.append((book, stage, buckets))
    return rows


def reset_latency() -> None:
    """Forget every recorded latency of this process (tests)."""
    forget(recorder)
    _reports.clear()
