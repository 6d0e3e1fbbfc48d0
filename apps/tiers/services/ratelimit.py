"""Rate limiters: Redis (one Lua round trip, shared by every process) and in-process memory.

`hit` spends one request from a customer's bucket and windows, or refuses, and also reports the
key-cache generation so processes learn of staff changes in the same round trip. When Redis cannot be
reached the behaviour follows `HFT_RATELIMIT_ON_REDIS_DOWN`: "local" (default) falls back to the
per-process memory limiter, "deny" refuses with 503.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from django.conf import settings

from apps.tiers.domain.ratelimit import WINDOWS, Bucket, Decision, Limits, WindowUsage, decide, window_end_ms
from apps.tiers.exceptions import RateLimiterUnavailable
from apps.tiers.services import redis_client

logger = logging.getLogger(__name__)

AUTH_GENERATION_KEY = "hft:authgen"
LUA_SOURCE = (Path(__file__).parent / "lua" / "ratelimit.lua").read_text()


@dataclass(frozen=True, slots=True)
class LimitResult:
    decision: Decision
    auth_generation: int | None  # None when the answer did not come from Redis
    is_degraded: bool = False  # True when Redis was down and the local limiter answered


class MemoryLimiter:
    """Exact within one process: the embedded default, and the fallback when Redis is down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, Bucket] = {}
        self._windows: dict[tuple[int, str, int], int] = {}

    def hit(self, customer_id: int, limits: Limits, now_ms: int | None = None, cost: int = 1) -> Decision:
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._lock:
            keys = {name: (customer_id, name, window_end_ms(now_ms, length)) for name, length in WINDOWS}
            used = {name: self._windows.get(key, 0) for name, key in keys.items()}
            decision, bucket = decide(limits, self._buckets.get(customer_id), used, now_ms, cost)
            if bucket is not None:
                self._buckets[customer_id] = bucket
                for name, key in keys.items():
                    self._windows[key] = used[name] + cost
            self._expire(now_ms)
            return decision

    def _expire(self, now_ms: int) -> None:
        if len(self._windows) > 10_000:
            self._windows = {k: v for k, v in self._windows.items() if k[2] > now_ms}

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._windows.clear()


class RedisLimiter:
    """One EVALSHA per request, on a connection taken from a small free list of our own.

    redis-py's Script call costs ~130 µs of Python per request (pool checkout, retries, wrappers);
    speaking the command on a bare connection costs a third of that (BENCHMARKS.md). Django runs each
    request's sync code in a thread of its own, so the connections are shared, not thread-local.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._sha = hashlib.sha1(LUA_SOURCE.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._idle: list[Any] = []  # list.pop/append are atomic: no lock on the hot path

    def _evalsha(self, keys: list[str], args: Sequence[object]) -> list[Any]:
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._client.connection_pool.make_connection()
        try:
            try:
                conn.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                result = conn.read_response()
            except redis.exceptions.NoScriptError:
                self._client.script_load(LUA_SOURCE)  # a new or restarted Redis: load once, then retry
                conn.send_command("EVALSHA", self._sha, len(keys), *keys, *args)
                result = conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
            raise
        self._idle.append(conn)
        return cast(list[Any], result)

    def hit(self, customer_id: int, limits: Limits, now_ms: int | None = None, cost: int = 1) -> tuple[Decision, int]:
        keys = [f"hft:rl:{customer_id}", AUTH_GENERATION_KEY]
        args = [
            "" if now_ms is None else now_ms,
            limits.rate_milli_per_s,
            limits.burst,
            limits.per_minute,
            limits.per_hour,
            limits.per_day,
            cost,
        ]
        raw = self._evalsha(keys, args)
        denied = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        now = int(raw[2])
        windows = tuple(
            WindowUsage(name, limits.window_limit(name), int(raw[5 + i]), window_end_ms(now, length))
            for i, (name, length) in enumerate(WINDOWS)
        )
        decision = Decision(
            is_allowed=denied == "",
            denied_by=denied or None,
            retry_after_ms=int(raw[1]),
            now_ms=now,
            burst_limit=limits.burst,
            burst_remaining=int(raw[3]),
            burst_full_in_ms=int(raw[4]),
            windows=windows,
        )
        return decision, int(raw[8])


class PlatformLimiter:
    """Redis when configured, with the documented fallback; memory when embedded."""

    def __init__(self) -> None:
        self.memory = MemoryLimiter()
        self._redis: RedisLimiter | None = None

    def _redis_limiter(self, client: redis.Redis) -> RedisLimiter:
        # The script's SHA is computed once per client, not per request.
        if self._redis is None or self._redis._client is not client:
            self._redis = RedisLimiter(client)
        return self._redis

    def hit(self, customer_id: int, limits: Limits, now_ms: int | None = None) -> LimitResult:
        client = redis_client.get_redis()
        if client is None:
            return LimitResult(self.memory.hit(customer_id, limits, now_ms), None)
        if not redis_client.is_breaker_open():
            try:
                decision, generation = self._redis_limiter(client).hit(customer_id, limits, now_ms)
                return LimitResult(decision, generation)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                logger.warning("rate limiter: Redis unreachable (%s); fallback %s", exc, self.fallback)
                redis_client.trip_breaker()
        if self.fallback == "deny":
            raise RateLimiterUnavailable("Rate limiting is unavailable; retry shortly.", headers={"Retry-After": "1"})
        return LimitResult(self.memory.hit(customer_id, limits, now_ms), None, is_degraded=True)

    @property
    def fallback(self) -> str:
        return str(settings.HFT_RATELIMIT_ON_REDIS_DOWN)


limiter = PlatformLimiter()
