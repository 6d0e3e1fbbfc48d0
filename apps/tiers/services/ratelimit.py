"""Rate limiters: Redis (one Lua round trip, shared by every process) and in-process memory.

`hit` spends one request from a customer's bucket and windows, or refuses, and also reports the
key-cache generation so processes learn of staff changes in the same round trip. When Redis cannot be
reached, or answers the script with an error, the behaviour follows `HFT_RATELIMIT_ON_REDIS_DOWN`:
"local" (default) falls back to the per-process memory limiter, "deny" refuses with 503.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hiredis
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


class ScriptLink:
    """One Redis connection spoken to directly: the packed EVALSHA onto its socket, the reply read by hiredis.

    redis-py opens it (address, TLS, AUTH, database), so the URL means what it means everywhere else;
    after that, redis-py's per-call layers (pool checkout, health checks, its parser's buffering) cost
    more Python than the call itself, so the hot path skips them. Any socket failure closes the link and
    raises redis-py's ConnectionError or TimeoutError, which the limiter's fallback handles.
    """

    __slots__ = ("_conn", "_reader", "_sock")

    def __init__(self, conn: Any) -> None:
        conn.connect()  # raises redis.ConnectionError / TimeoutError
        self._conn = conn
        self._sock = conn._sock  # redis-py's connected socket (plain or TLS), which it keeps as `_sock`
        self._reader = hiredis.Reader(replyError=redis.exceptions.ResponseError)

    def send(self, packed: bytes) -> None:
        try:
            self._sock.sendall(packed)
        except OSError as exc:
            raise self._failed(exc) from exc

    def read(self) -> Any:
        """The next reply; an error reply is returned as a redis ResponseError, not raised."""
        reader = self._reader
        reply = reader.gets()
        while reply is False:
            try:
                data = self._sock.recv(65536)
            except OSError as exc:
                raise self._failed(exc) from exc
            if not data:
                raise self._failed(ConnectionResetError("Redis closed the connection"))
            reader.feed(data)
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                raise self._failed(exc) from exc
        return reply

    def close(self) -> None:
        self._conn.disconnect()

    def _failed(self, exc: BaseException) -> redis.RedisError:
        self.close()
        if isinstance(exc, TimeoutError):
            return redis.TimeoutError(f"Redis did not answer in time: {exc}")
        return redis.ConnectionError(f"Redis connection lost: {exc}")


class RedisLimiter:
    """One EVALSHA per request, on a link taken from a small free list of our own (`ScriptLink`).

    redis-py's Script call costs ~130 µs of Python per request (pool checkout, retries, wrappers); the
    packed command on a bare socket costs a fraction of that (BENCHMARKS.md). Django runs requests'
    sync code on several threads, so links are shared through the free list, not thread-local.

    A call is split in two, `send` and `receive`, so the round trip can run while the request does other
    work. Between them the link belongs to that one call; `receive` puts it back on the list.

    A link that fails (Redis restarted, or dropped its clients) takes the idle ones with it: they lead to the
    same server and are as dead, and each would otherwise fail one more request once the breaker closes.
    """

    MAX_PACKED = 10_000  # cached command encodings (customers and tier limits), dropped together past this

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._sha = hashlib.sha1(LUA_SOURCE.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._idle: list[ScriptLink] = []  # list.pop/append are atomic: no lock on the hot path
        self._packed: dict[tuple[int, Limits], bytes] = {}

    def _command(self, customer_id: int, limits: Limits, now_ms: int | None) -> bytes:
        # With Redis's clock and a cost of one (every request), a customer's command never changes.
        if now_ms is None:
            packed = self._packed.get((customer_id, limits))
            if packed is not None:
                return packed
        keys = [f"hft:rl:{customer_id}", AUTH_GENERATION_KEY]
        args = [
            "" if now_ms is None else now_ms,
            limits.rate_milli_per_s,
            limits.burst,
            limits.per_minute,
            limits.per_hour,
            limits.per_day,
            1,
        ]
        # cast: hiredis's stub types the argument as a one-element tuple.
        packed = bytes(hiredis.pack_command(cast(Any, ("EVALSHA", self._sha, len(keys), *keys, *args))))
        if now_ms is None:
            if len(self._packed) >= self.MAX_PACKED:
                self._packed = {}
            self._packed[(customer_id, limits)] = packed
        return packed

    def send(self, customer_id: int, limits: Limits, now_ms: int | None = None) -> ScriptLink:
        """Send one hit; returns the link whose reply `receive` reads. Raises redis errors."""
        try:
            link = self._idle.pop()
        except IndexError:
            link = ScriptLink(self._client.connection_pool.make_connection())
        try:
            link.send(self._command(customer_id, limits, now_ms))  # a failed link is closed, not put back
        except redis.RedisError:
            self.discard_idle()
            raise
        return link

    def discard_idle(self) -> None:
        """Close every idle link (the next calls open new ones)."""
        while True:
            try:
                link = self._idle.pop()
            except IndexError:
                return
            link.close()

    def receive(
        self, link: ScriptLink, customer_id: int, limits: Limits, now_ms: int | None = None
    ) -> tuple[Decision, int]:
        """Read the reply of `send` (the decision and the auth generation) and put the link back."""
        try:
            raw = link.read()
        except redis.RedisError:  # the link failed (and is closed): a connection error or a timeout
            self.discard_idle()
            raise
        if isinstance(raw, redis.exceptions.ResponseError):
            if not str(raw).startswith("NOSCRIPT"):
                self._idle.append(link)  # the link itself is fine: the script failed
                raise raw
            try:
                self._client.script_load(LUA_SOURCE)  # a new or restarted Redis: load once, then retry
                link.send(self._command(customer_id, limits, now_ms))
                raw = link.read()
            except redis.RedisError:
                link.close()  # its request is answered by the fallback; the next call opens a new link
                self.discard_idle()
                raise
            if isinstance(raw, redis.exceptions.ResponseError):
                self._idle.append(link)
                raise raw
        self._idle.append(link)
        return self._decision(cast(list[Any], raw), limits)

    @staticmethod
    def _decision(raw: list[Any], limits: Limits) -> tuple[Decision, int]:
        denied = raw[0].decode()
        now = int(raw[2])
        minute, hour, day = WINDOWS
        decision = Decision(
            is_allowed=denied == "",
            denied_by=denied or None,
            retry_after_ms=int(raw[1]),
            now_ms=now,
            burst_limit=limits.burst,
            burst_remaining=int(raw[3]),
            burst_full_in_ms=int(raw[4]),
            windows=(
                WindowUsage(minute[0], limits.per_minute, int(raw[5]), window_end_ms(now, minute[1])),
                WindowUsage(hour[0], limits.per_hour, int(raw[6]), window_end_ms(now, hour[1])),
                WindowUsage(day[0], limits.per_day, int(raw[7]), window_end_ms(now, day[1])),
            ),
        )
        return decision, int(raw[8])


class PendingLimit:
    """One request's limiter call under way: begun by `PlatformLimiter.begin`, answered by `result`.

    Against Redis the script has been sent and its reply is read by the first `result()`, so the round
    trip overlaps whatever the request does in between. Embedded, or with Redis down, the answer is
    worked out by `result()` too (the "deny" fallback raises there, where the refusal is reported).
    """

    __slots__ = ("_error", "_link", "_owner", "_redis", "_result", "customer_id", "is_embedded", "limits", "now_ms")

    def __init__(
        self,
        owner: PlatformLimiter,
        customer_id: int,
        limits: Limits,
        now_ms: int | None,
        redis_limiter: RedisLimiter | None = None,
        link: ScriptLink | None = None,
        *,
        is_embedded: bool = False,
    ) -> None:
        self._owner = owner
        self.is_embedded = is_embedded  # no Redis configured: the memory limiter is the limiter
        self._redis = redis_limiter
        self._link = link
        self.customer_id = customer_id
        self.limits = limits
        self.now_ms = now_ms
        self._result: LimitResult | None = None
        self._error: Exception | None = None

    @property
    def is_answered(self) -> bool:
        return self._result is not None or self._error is not None

    def result(self) -> LimitResult:
        """The answer, worked out once: later calls return it (or raise it) again, never spend again."""
        result = self._result
        if result is not None:
            return result
        if self._error is not None:
            raise self._error
        redis_limiter, link = self._redis, self._link
        self._redis = self._link = None
        try:
            result = self._result = self._owner._answer(self, redis_limiter, link)
        except Exception as error:  # the "deny" refusal, or anything unforeseen: kept, so never spent twice
            self._error = error
            raise
        return result


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

    def begin(self, customer_id: int, limits: Limits, now_ms: int | None = None) -> PendingLimit:
        """Start spending one request; against Redis the script is sent now and its reply read later."""
        client = redis_client.get_redis()
        if client is None:
            return PendingLimit(self, customer_id, limits, now_ms, is_embedded=True)
        if not redis_client.is_breaker_open():
            redis_limiter = self._redis_limiter(client)
            try:
                link = redis_limiter.send(customer_id, limits, now_ms)
            except redis.RedisError as exc:
                self._redis_failed(exc)
            else:
                return PendingLimit(self, customer_id, limits, now_ms, redis_limiter, link)
        return PendingLimit(self, customer_id, limits, now_ms)

    def hit(self, customer_id: int, limits: Limits, now_ms: int | None = None) -> LimitResult:
        return self.begin(customer_id, limits, now_ms).result()

    def _answer(
        self, pending: PendingLimit, redis_limiter: RedisLimiter | None, link: ScriptLink | None
    ) -> LimitResult:
        customer_id, limits, now_ms = pending.customer_id, pending.limits, pending.now_ms
        if redis_limiter is not None and link is not None:
            try:
                decision, generation = redis_limiter.receive(link, customer_id, limits, now_ms)
                return LimitResult(decision, generation)
            except redis.RedisError as exc:  # unreachable, or an error reply (a clobbered key): same fallback
                self._redis_failed(exc)
        elif pending.is_embedded:
            return LimitResult(self.memory.hit(customer_id, limits, now_ms), None)
        if self.fallback == "deny":
            raise RateLimiterUnavailable("Rate limiting is unavailable; retry shortly.", headers={"Retry-After": "1"})
        return LimitResult(self.memory.hit(customer_id, limits, now_ms), None, is_degraded=True)

    def _redis_failed(self, exc: Exception) -> None:
        logger.warning("rate limiter: Redis failed (%s); fallback %s", exc, self.fallback)
        redis_client.trip_breaker()

    @property
    def fallback(self) -> str:
        return str(settings.HFT_RATELIMIT_ON_REDIS_DOWN)


limiter = PlatformLimiter()
