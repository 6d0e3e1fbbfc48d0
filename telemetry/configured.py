"""Recorders wired to the Django settings: the store follows REDIS_URL, the background flush HFT_LATENCY_*.

The store is looked up at every flush and read, not fixed at import, so a process (or a test) that
changes REDIS_URL is followed.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from telemetry.recorder import WindowedRecorder
from telemetry.stores import Store, memory_store, store_for_url


def current_store() -> Store:
    return store_for_url(settings.REDIS_URL)


def flush_interval_s() -> float | None:
    """Seconds between background flushes, or None where flushes are left to readers (tests)."""
    return float(settings.HFT_LATENCY_PUSH_S) if settings.HFT_LATENCY_BACKGROUND else None


def configured_recorder(namespace: str, *, is_replicated: Callable[[str], bool] | None = None) -> WindowedRecorder:
    return WindowedRecorder(
        namespace, current_store, is_replicated=is_replicated, background_interval_s=flush_interval_s
    )


def forget(recorder: WindowedRecorder) -> None:
    """Drop a recorder's unflushed values and, embedded, what it stored (tests)."""
    recorder.reset()
    memory_store().clear(recorder.namespace)
