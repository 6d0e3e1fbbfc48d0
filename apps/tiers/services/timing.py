"""HTTP request durations per tier, in the shared windowed HDR histograms (`telemetry`), merged across processes.

The middleware that meters requests records here (in memory, no I/O); a background flush writes to Redis
when configured. The series is the tier's slug.
"""

from __future__ import annotations

from telemetry.configured import configured_recorder, current_store, forget
from telemetry.windows import Buckets, WindowStats, read_buckets, read_windows

NAMESPACE = "hft:http"

recorder = configured_recorder(NAMESPACE)


def record_request(tier_slug: str, duration_ns: int) -> None:
    """Count one API request of a tier (integer ns from receipt to response). Thread-safe, no I/O."""
    recorder.record(tier_slug, duration_ns)


def tier_buckets() -> dict[str, Buckets]:
    """Tier slug → cumulative Prometheus buckets, every process's requests included."""
    recorder.flush()
    return read_buckets(current_store(), NAMESPACE)


def tier_windows(tier_slugs: list[str], now_ns: int) -> dict[str, list[WindowStats]]:
    recorder.flush()
    return read_windows(current_store(), NAMESPACE, tier_slugs, now_ns)


def reset_timing() -> None:
    """Forget every recorded request duration of this process (tests)."""
    forget(recorder)
