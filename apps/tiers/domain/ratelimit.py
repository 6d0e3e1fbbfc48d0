"""Token bucket plus fixed quota windows, decided atomically: all pass and all are spent, or none is.

The Redis Lua script in `apps/tiers/services/lua/ratelimit.lua` is a line-for-line port of `decide`;
the shared tests run both against the same cases. Units: time in ms, tokens in micro-tokens (1e-6), so
the arithmetic stays in integers (refill per ms in micro-tokens equals the rate in milli-tokens per s).
"""

from __future__ import annotations

from dataclasses import dataclass

MICRO = 1_000_000
# (name, length in seconds), shortest first.
WINDOWS: tuple[tuple[str, int], ...] = (("minute", 60), ("hour", 3600), ("day", 86400))
BURST = "burst"


@dataclass(frozen=True, slots=True)
class Limits:
    rate_milli_per_s: int  # refill, in thousandths of a token per second
    burst: int  # bucket capacity in whole tokens
    per_minute: int
    per_hour: int
    per_day: int

    def window_limit(self, name: str) -> int:
        if name == "minute":
            return self.per_minute
        return self.per_hour if name == "hour" else self.per_day

    @property
    def burst_window_s(self) -> int:
        """Seconds a drained bucket takes to fill: the `w` of the burst policy."""
        return max(1, -(-self.burst * 1000 // self.rate_milli_per_s))


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens_micro: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class WindowUsage:
    name: str
    limit: int
    used: int
    reset_ms: int  # epoch ms at which this window's count starts again

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class Decision:
    is_allowed: bool
    denied_by: str | None  # "burst", "minute", "hour" or "day": the window that ran out
    retry_after_ms: int
    now_ms: int
    burst_limit: int
    burst_remaining: int
    burst_full_in_ms: int  # ms until the bucket is full again
    windows: tuple[WindowUsage, ...]


def window_end_ms(now_ms: int, length_s: int) -> int:
    length_ms = length_s * 1000
    return (now_ms // length_ms + 1) * length_ms


def refill(limits: Limits, bucket: Bucket | None, now_ms: int) -> int:
    capacity = limits.burst * MICRO
    if bucket is None:
        return capacity
    elapsed_ms = max(0, now_ms - bucket.ts_ms)
    return min(capacity, bucket.tokens_micro + elapsed_ms * limits.rate_milli_per_s)


def decide(
    limits: Limits, bucket: Bucket | None, used: dict[str, int], now_ms: int, cost: int = 1
) -> tuple[Decision, Bucket | None]:
    """Return the decision and, when allowed, the bucket to store (window counts grow by `cost`)."""
    tokens = refill(limits, bucket, now_ms)
    need = cost * MICRO
    # Every exhausted window is a reason; the one that lasts longest is reported, so Retry-After holds.
    denied_by: str | None = None
    retry_after_ms = 0
    if tokens < need:
        denied_by = BURST
        retry_after_ms = -(-(need - tokens) // limits.rate_milli_per_s)
    for name, length_s in WINDOWS:
        if used.get(name, 0) + cost > limits.window_limit(name):
            wait = window_end_ms(now_ms, length_s) - now_ms
            if wait > retry_after_ms:
                denied_by, retry_after_ms = name, wait
    is_allowed = denied_by is None
    if is_allowed:
        tokens -= need
    spent = cost if is_allowed else 0
    windows = tuple(
        WindowUsage(name, limits.window_limit(name), used.get(name, 0) + spent, window_end_ms(now_ms, length_s))
        for name, length_s in WINDOWS
    )
    decision = Decision(
        is_allowed=is_allowed,
        denied_by=denied_by,
        retry_after_ms=retry_after_ms,
        now_ms=now_ms,
        burst_limit=limits.burst,
        burst_remaining=tokens // MICRO,
        burst_full_in_ms=-(-(limits.burst * MICRO - tokens) // limits.rate_milli_per_s),
        windows=windows,
    )
    return decision, (Bucket(tokens, now_ms) if is_allowed else None)
