"""The per-process recorder: `record` on the hot path, `flush` from a background thread or a reader.

`record` only appends (series, value, time) to a bounded deque: no lock, no histogram arithmetic, no
I/O, safe from any thread. `flush` drains it into live HDR histograms, one per series and slot of each
resolution, and counts the Prometheus buckets from the raw values (so bucket counts are exact), then
writes every changed slot and the counter increments to the store in one batch. A slot's histogram is
kept a grace period past the slot's end (for values read from the clock just before it and drained by
the next flush), then dropped: by then its final state is in the store. So a series holds about two
live histograms (the 10 s slot and the 5 min block), some 220 KB each.

Series whose values every process sees alike (a published event's own timestamps, seen by each web
process's hub) are `replicated`: summing them over processes would count each event once per process,
so only the holder of a lease in the store keeps them, and the other processes drop theirs.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable

from hdrh.histogram import HdrHistogram

from telemetry import hdr
from telemetry.layout import (
    BUCKET_BOUNDS_NS,
    COUNT_AT,
    COUNTERS_LEN,
    RESOLUTIONS,
    SUM_AT,
    clamp_ns,
    lease_key,
    slot_key,
)
from telemetry.stores import Batch, Store

logger = logging.getLogger(__name__)

# Values waiting for a flush; past this the oldest are dropped (about 25 MB; at a flush a second that
# is far more values than the platform records).
MAX_PENDING = 200_000
# A slot takes values this long past its end, beyond two flush intervals (values recorded just before
# the end reach the histograms at the next flush).
GRACE_NS = 1_000_000_000
# The background flush folds values in chunks and sleeps between them, so it never holds the GIL long:
# folding costs ~5 µs a value, and a 2 s backlog of a busy web process (~1,000 values) folded in one go
# would stall its request threads ~5 ms (the interpreter's switch interval). A chunk is ~0.6 ms.
FOLD_CHUNK = 128
FOLD_PAUSE_S = 0.0002


def pause_between_chunks() -> None:
    """Let other threads run: a real sleep, so the scheduler runs them even on a single core."""
    time.sleep(FOLD_PAUSE_S)


_recorders: weakref.WeakSet[WindowedRecorder] = weakref.WeakSet()


def new_process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class WindowedRecorder:
    def __init__(
        self,
        namespace: str,
        store: Callable[[], Store],
        *,
        clock: Callable[[], int] = time.time_ns,
        is_replicated: Callable[[str], bool] | None = None,
        background_interval_s: Callable[[], float | None] | None = None,
        process_id: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.process_id = process_id or new_process_id()
        self._store = store
        self._clock = clock
        self._is_replicated = is_replicated
        self._background_interval_s = background_interval_s
        self._pending: deque[tuple[str, int, int]] = deque(maxlen=MAX_PENDING)
        self._lock = threading.Lock()
        self._live: dict[tuple[str, int, int], HdrHistogram] = {}  # (series, resolution, slot index)
        self._dirty: set[tuple[str, int, int]] = set()
        self._counters: dict[str, list[int]] = {}
        self._replicated: dict[str, bool] = {}
        self._is_leader = False
        self._is_started = False
        self._start_lock = threading.Lock()
        _recorders.add(self)

    def record(self, series: str, value_ns: int) -> None:
        """Count one duration (integer ns) now; thread-safe and lock-free."""
        self._pending.append((series, value_ns, self._clock()))
        if not self._is_started:
            self._start()

    def flush(self, *, pause: Callable[[], None] | None = None) -> None:
        """Fold what was recorded into the histograms and write the changes to the store.

        A store failure raises; the counters and the live slots' histograms go out with the next flush that
        succeeds. A slot that ends meanwhile is dropped unwritten, so a long outage costs no memory.
        With `pause` (the background flush), it is called between chunks of `FOLD_CHUNK` values; `record`
        takes no lock, so recording goes on meanwhile.
        """
        with self._lock:
            store = self._store()
            now_ns = self._clock()
            try:
                if self._is_replicated is not None:
                    self._is_leader = store.hold_lease(lease_key(self.namespace), self.process_id, self._lease_ttl_s())
                self._fold(now_ns, pause)
                batch = self._batch(now_ns)
                if not batch.is_empty():
                    store.apply(batch)
                self._dirty.clear()
                self._counters = {}
            finally:
                self._drop_finished(now_ns)

    def _batch(self, now_ns: int) -> Batch:
        batch = Batch(self.namespace, self.process_id, now_ns, counters=self._counters)
        for key in sorted(self._dirty):
            series, res, index = key
            resolution = RESOLUTIONS[res]
            encoded = hdr.encode(self._live[key])
            batch.histograms.append((slot_key(self.namespace, series, resolution, index), encoded, resolution.ttl_s))
        return batch

    def reset(self) -> None:
        """Forget everything recorded and not yet flushed (tests)."""
        with self._lock:
            self._pending.clear()
            self._live.clear()
            self._dirty.clear()
            self._counters = {}
            self._replicated.clear()

    def _fold(self, now_ns: int, pause: Callable[[], None] | None = None) -> None:
        oldest = self._oldest_open(now_ns)
        pending = self._pending
        for done in range(len(pending)):
            if pause is not None and done and done % FOLD_CHUNK == 0:
                pause()
            series, value_ns, at_ns = pending.popleft()
            if not self._is_leader and self._replicated_series(series):
                continue
            value_ns = clamp_ns(value_ns)
            for res, resolution in enumerate(RESOLUTIONS):
                index = resolution.index(at_ns)
                if index < oldest[res]:
                    continue  # its slot is closed, final in the store; the counters below still count it
                key = (series, res, index)
                histogram = self._live.get(key)
                if histogram is None:
                    histogram = self._live[key] = hdr.new_histogram()
                histogram.record_value(value_ns)
                self._dirty.add(key)
            counters = self._counters.get(series)
            if counters is None:
                counters = self._counters[series] = [0] * COUNTERS_LEN
            counters[bisect_left(BUCKET_BOUNDS_NS, value_ns)] += 1
            counters[COUNT_AT] += 1
            counters[SUM_AT] += value_ns

    def _replicated_series(self, series: str) -> bool:
        known = self._replicated.get(series)
        if known is None:
            known = self._replicated[series] = self._is_replicated is not None and self._is_replicated(series)
        return known

    def _oldest_open(self, now_ns: int) -> list[int]:
        """Per resolution, the oldest slot still taking values."""
        interval = self._background_interval_s() if self._background_interval_s else None
        grace_ns = int(2 * (interval or 1) * 1_000_000_000) + GRACE_NS
        return [r.index(now_ns - grace_ns) for r in RESOLUTIONS]

    def _drop_finished(self, now_ns: int) -> None:
        oldest = self._oldest_open(now_ns)
        for key in [k for k in self._live if k[2] < oldest[k[1]]]:
            del self._live[key]
            self._dirty.discard(key)

    def _lease_ttl_s(self) -> int:
        interval = self._background_interval_s() if self._background_interval_s else None
        return max(5, int(3 * (interval or 1)))

    def _start(self) -> None:
        with self._start_lock:  # not self._lock: a first record must not wait for a flush's I/O
            if self._is_started:
                return
            self._is_started = True
            interval = self._background_interval_s() if self._background_interval_s else None
        if interval:
            name = f"telemetry-{self.namespace}"
            threading.Thread(target=self._flush_forever, args=(interval,), name=name, daemon=True).start()

    def _flush_forever(self, interval_s: float) -> None:
        while True:
            time.sleep(interval_s)
            try:
                self.flush(pause=pause_between_chunks)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failed flush
                logger.warning("telemetry %s: flush failed (%s); retrying", self.namespace, exc)

    def _after_fork(self) -> None:
        # A forked child has none of its parent's threads, and must not write under the parent's name.
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._is_started = False
        self._is_leader = False
        self.process_id = new_process_id()
        self._pending.clear()
        self._live.clear()
        self._dirty.clear()
        self._counters = {}


def _reset_after_fork() -> None:
    for recorder in list(_recorders):
        recorder._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
