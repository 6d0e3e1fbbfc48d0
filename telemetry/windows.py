"""Reading the statistics back: windows merged from slots of every process, and the Prometheus counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telemetry import hdr
from telemetry.layout import (
    BUCKET_BOUNDS_NS,
    COUNT_AT,
    NS_PER_S,
    RESOLUTIONS,
    SUM_AT,
    WINDOWS,
    Resolution,
    slot_key,
)
from telemetry.stores import Store


@dataclass(frozen=True, slots=True)
class WindowStats:
    window: str
    length_s: int
    since_ns: int  # start of the oldest slot merged
    stats: hdr.Stats


def _indexes(resolution: Resolution, now_ns: int) -> range:
    """The slots of `resolution` that some window reads, oldest first, ending with the current one."""
    needed = max(w.slots for w in WINDOWS if w.resolution is resolution)
    last = resolution.index(now_ns)
    return range(last - needed + 1, last + 1)


def read_windows(store: Store, namespace: str, series_list: Sequence[str], now_ns: int) -> dict[str, list[WindowStats]]:
    """Each series' 1 m, 5 m and 1 h statistics, merging every process's histogram of every slot.

    One round trip for all series; each slot is decoded once and added to every window it is part of.
    """
    keys = [
        slot_key(namespace, series, resolution, index)
        for series in series_list
        for resolution in RESOLUTIONS
        for index in _indexes(resolution, now_ns)
    ]
    blobs = iter(store.read_slots(keys))
    result: dict[str, list[WindowStats]] = {}
    for series in series_list:
        merged = {w.name: hdr.new_histogram() for w in WINDOWS}
        for resolution in RESOLUTIONS:
            for index in _indexes(resolution, now_ns):
                encodings = next(blobs)
                if not encodings:
                    continue
                slot = hdr.merge(encodings)
                for window in WINDOWS:
                    if window.resolution is resolution and index >= window.first_index(now_ns):
                        merged[window.name].add(slot)
        result[series] = [
            WindowStats(
                w.name,
                w.length_s,
                w.first_index(now_ns) * w.resolution.span_ns,
                hdr.stats(merged[w.name]),
            )
            for w in WINDOWS
        ]
    return result


@dataclass(frozen=True, slots=True)
class Buckets:
    """Cumulative Prometheus histogram of one series: (le in s, count ≤ le) with +Inf last, and the sum in s."""

    buckets: list[tuple[float, int]]
    count: int
    sum_s: float


def read_buckets(store: Store, namespace: str) -> dict[str, Buckets]:
    result: dict[str, Buckets] = {}
    for series, counters in sorted(store.read_counters(namespace).items()):
        cumulative, running = [], 0
        for bound_ns, count in zip((*BUCKET_BOUNDS_NS, None), counters[:COUNT_AT], strict=True):
            running += count
            cumulative.append((float("inf") if bound_ns is None else bound_ns / NS_PER_S, running))
        result[series] = Buckets(cumulative, counters[COUNT_AT], counters[SUM_AT] / NS_PER_S)
    return result
