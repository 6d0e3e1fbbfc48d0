"""Units and layout of the latency statistics: HDR range, time slots, windows, Prometheus buckets, keys.

Every value is an integer number of nanoseconds. A histogram covers 1 ns to 60 s at 3 significant digits:
values below 2,048 ns are exact, above that each is within 0.1% (reported as the top of its bucket, so
never below the true value). Longer durations count as 60 s; negative ones (clocks of two hosts that
disagree) count as 0.
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000
LOWEST_NS = 1
HIGHEST_NS = 60 * NS_PER_S
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True, slots=True)
class Resolution:
    """A series of aligned time slots; each process publishes one histogram per series and slot."""

    name: str
    span_ns: int
    ttl_s: int  # how long Redis keeps a slot: the longest window read from it, one slot, and slack

    def index(self, ts_ns: int) -> int:
        return ts_ns // self.span_ns


# 1 m and 5 m are read from 10 s slots, 1 h from 5 min blocks: 30 + 12 histograms to merge per series
# instead of 360, which keeps an hour's read cheap; the hour's edge moves in 5 min steps.
SLOT_10S = Resolution("10s", 10 * NS_PER_S, ttl_s=300 + 10 + 300)
BLOCK_5M = Resolution("5m", 300 * NS_PER_S, ttl_s=3600 + 300 + 300)
RESOLUTIONS = (SLOT_10S, BLOCK_5M)


@dataclass(frozen=True, slots=True)
class Window:
    """The current slot and the complete ones before it, `length_s` in all: so the window covers between
    `length_s` less one slot and `length_s`, ending now."""

    name: str
    length_s: int
    resolution: Resolution

    @property
    def slots(self) -> int:
        return self.length_s * NS_PER_S // self.resolution.span_ns

    def first_index(self, now_ns: int) -> int:
        return self.resolution.index(now_ns) - self.slots + 1


WINDOWS = (Window("1m", 60, SLOT_10S), Window("5m", 300, SLOT_10S), Window("1h", 3600, BLOCK_5M))

# Prometheus bucket upper bounds (le), sub-millisecond at the low end; a last bucket is +Inf.
BUCKET_BOUNDS_NS = (
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
)
# Counters per series: one per bucket (+Inf last), then the count and the sum in ns.
COUNT_AT = len(BUCKET_BOUNDS_NS) + 1
SUM_AT = COUNT_AT + 1
COUNTERS_LEN = SUM_AT + 1
COUNTERS_TTL_S = 7 * 24 * 3600  # a series silent this long starts again from zero (a counter reset)


def clamp_ns(value_ns: int) -> int:
    return 0 if value_ns < 0 else min(value_ns, HIGHEST_NS)


def slot_key(namespace: str, series: str, resolution: Resolution, index: int) -> str:
    """A Redis hash: one field per process, holding that process's encoded histogram of the slot."""
    return f"{namespace}:hdr:{series}:{resolution.name}:{index}"


def counters_key(namespace: str, series: str) -> str:
    """A Redis hash of cluster-wide Prometheus counters: field "i" holds counter i (COUNTERS_LEN of them)."""
    return f"{namespace}:prom:{series}"


def series_key(namespace: str) -> str:
    return f"{namespace}:series"


def lease_key(namespace: str) -> str:
    return f"{namespace}:leader"
