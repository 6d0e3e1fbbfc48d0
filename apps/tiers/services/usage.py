"""Usage metering: requests, refusals and bytes per key, endpoint and minute, plus each key's last use.

Counted in process memory on the request path (no I/O), pushed every `HFT_USAGE_PUSH_S` by a
background thread: into Redis when configured (the Celery beat job `flush_usage_task` then moves Redis
into PostgreSQL), or straight into the database when embedded. A crash loses at most one push interval.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection, transaction

from apps.tiers.models import APIKey, UsageRecord
from apps.tiers.services import redis_client

logger = logging.getLogger(__name__)

PENDING_KEY = "hft:usage:pending"
FLUSHING_KEY = "hft:usage:flushing"
LAST_USED_KEY = "hft:usage:lastused"
METRICS = ("requests", "refusals", "bytes_out")
# (key id, customer id, endpoint, minute epoch s) → [requests, refusals, bytes]
Counts = dict[tuple[str, int, str, int], list[int]]


class UsageAccumulator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counts = defaultdict(lambda: [0, 0, 0])
        self._last_used: dict[str, int] = {}
        self._pusher: threading.Thread | None = None

    def record(
        self, key_id: str, customer_id: int, endpoint: str, *, is_refused: bool, bytes_out: int, now_s: int
    ) -> None:
        minute = now_s - now_s % 60
        with self._lock:
            row = self._counts[(key_id, customer_id, endpoint, minute)]
            row[0] += 1
            row[1] += is_refused
            row[2] += bytes_out
            self._last_used[key_id] = now_s
        if self._pusher is None and settings.HFT_USAGE_BACKGROUND:
            self._start_pusher()

    def take(self) -> tuple[Counts, dict[str, int]]:
        with self._lock:
            counts, last_used = dict(self._counts), self._last_used
            self._counts = defaultdict(lambda: [0, 0, 0])
            self._last_used = {}
        return counts, last_used

    def give_back(self, counts: Counts, last_used: dict[str, int]) -> None:
        """Return counts whose push failed, so the next push carries them."""
        with self._lock:
            for key, (req, ref, out) in counts.items():
                row = self._counts[key]
                row[0] += req
                row[1] += ref
                row[2] += out
            for key_id, ts in last_used.items():
                self._last_used[key_id] = max(ts, self._last_used.get(key_id, 0))

    def _start_pusher(self) -> None:
        with self._lock:
            if self._pusher is not None:
                return
            self._pusher = threading.Thread(target=self._push_forever, name="usage-pusher", daemon=True)
        self._pusher.start()

    def _push_forever(self) -> None:
        while True:
            time.sleep(settings.HFT_USAGE_PUSH_S)
            try:
                push_usage()
            except Exception:  # the loop must survive anything; the counts were given back
                logger.exception("usage push failed")


accumulator = UsageAccumulator()


def push_usage() -> int:
    """Move this process's counts on: to Redis, or (embedded) straight into the database."""
    client = redis_client.get_redis()
    counts, last_used = accumulator.take()
    if not counts and not last_used:
        return 0
    try:
        if client is None:
            write_usage(counts, last_used)
        else:
            _push_to_redis(client, counts, last_used)
    except Exception:
        accumulator.give_back(counts, last_used)
        raise
    return len(counts)


def _push_to_redis(client: redis.Redis, counts: Counts, last_used: dict[str, int]) -> None:
    pipe = client.pipeline(transaction=False)
    for (key_id, customer_id, endpoint, minute), values in counts.items():
        for metric, value in zip(METRICS, values, strict=True):
            if value:
                pipe.hincrby(PENDING_KEY, f"{key_id}|{customer_id}|{endpoint}|{minute}|{metric}", value)
    if last_used:
        pipe.hset(LAST_USED_KEY, mapping={k: str(v) for k, v in last_used.items()})
    pipe.execute()


def flush_usage() -> int:
    """Move all pending usage into the database; returns the number of rows written."""
    client = redis_client.get_redis()
    if client is None:
        return push_usage()
    push_usage()
    # Rename first, so increments arriving during the write land in a fresh hash. A flushing hash left
    # by a failed run is written again first (its increments were never committed).
    if not client.exists(FLUSHING_KEY):
        with contextlib.suppress(redis.ResponseError):  # raised when nothing is pending
            client.rename(PENDING_KEY, FLUSHING_KEY)
    raw = cast(dict[bytes, bytes], client.hgetall(FLUSHING_KEY))
    last_raw = cast(dict[bytes, bytes], client.hgetall(LAST_USED_KEY))
    counts: Counts = defaultdict(lambda: [0, 0, 0])
    for field, value in raw.items():
        key_id, customer_id, endpoint, minute, metric = field.decode().split("|")
        counts[(key_id, int(customer_id), endpoint, int(minute))][METRICS.index(metric)] += int(value)
    last_used = {k.decode(): int(v) for k, v in last_raw.items()}
    write_usage(dict(counts), last_used)
    client.delete(FLUSHING_KEY)
    if last_used:
        client.hdel(LAST_USED_KEY, *last_used.keys())
    return len(counts)


def write_usage(counts: Counts, last_used: dict[str, int]) -> None:
    """Add counts onto the per-minute rows (insert or increment) and advance keys' last-used times."""
    table = UsageRecord._meta.db_table
    # The table name is our model's, not input; every value goes through parameters.
    sql = (
        f"INSERT INTO {table} (api_key_id, customer_id, endpoint, minute, requests, refusals, bytes_out) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (api_key_id, endpoint, minute) DO UPDATE SET "
        f"requests = {table}.requests + excluded.requests, "
        f"refusals = {table}.refusals + excluded.refusals, "
        f"bytes_out = {table}.bytes_out + excluded.bytes_out"
    )
    known = set(APIKey.objects.filter(pk__in={k[0] for k in counts} | set(last_used)).values_list("pk", flat=True))
    rows: list[tuple[Any, ...]] = [
        (key_id, customer_id, endpoint, datetime.fromtimestamp(minute, UTC), *values)
        for (key_id, customer_id, endpoint, minute), values in counts.items()
        if key_id in known  # a key deleted since: its usage went with it
    ]
    with transaction.atomic():
        if rows:
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
        for key_id, ts in last_used.items():
            if key_id in known:
                moment = datetime.fromtimestamp(ts, UTC)
                APIKey.objects.filter(pk=key_id).exclude(last_used_at__gte=moment).update(last_used_at=moment)
