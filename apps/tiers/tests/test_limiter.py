"""The platform limiter on both backends (memory and real Redis): spend, roll-over, concurrency, outage."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from apps.tiers.domain.ratelimit import Limits
from apps.tiers.exceptions import RateLimiterUnavailable
from apps.tiers.services import redis_client
from apps.tiers.services.ratelimit import AUTH_GENERATION_KEY, LimitResult, PlatformLimiter

LIMITS = Limits(rate_milli_per_s=2000, burst=5, per_minute=60, per_hour=1000, per_day=10_000)
MINUTE_START = 1_700_000_040_000  # on a minute boundary


def test_burst_then_refusal_then_refill(backend: str) -> None:
    limiter = PlatformLimiter()
    results = [limiter.hit(1, LIMITS, MINUTE_START).decision for _ in range(6)]
    assert [d.is_allowed for d in results] == [True] * 5 + [False]
    assert results[-1].denied_by == "burst"
    assert results[-1].retry_after_ms == 500
    assert [d.burst_remaining for d in results[:5]] == [4, 3, 2, 1, 0]
    assert limiter.hit(1, LIMITS, MINUTE_START + 500).decision.is_allowed


def test_window_counts_roll_over_at_the_boundary(backend: str) -> None:
    limits = Limits(rate_milli_per_s=10**6, burst=1000, per_minute=3, per_hour=5, per_day=100)
    limiter = PlatformLimiter()
    first = [limiter.hit(7, limits, MINUTE_START + 59_000 + i).decision for i in range(4)]
    assert [d.is_allowed for d in first] == [True, True, True, False]
    assert first[-1].denied_by == "minute"
    assert first[-1].retry_after_ms == 1000 - 3
    nxt = limiter.hit(7, limits, MINUTE_START + 60_000).decision
    assert nxt.is_allowed
    assert {w.name: w.used for w in nxt.windows} == {"minute": 1, "hour": 4, "day": 4}
    # The hour quota (5) runs out in the new minute, and it is the hour that is named.
    assert limiter.hit(7, limits, MINUTE_START + 60_001).decision.is_allowed
    refused = limiter.hit(7, limits, MINUTE_START + 60_002).decision
    assert refused.denied_by == "hour"


def test_customers_have_separate_buckets(backend: str) -> None:
    limiter = PlatformLimiter()
    for _ in range(5):
        limiter.hit(1, LIMITS, MINUTE_START)
    assert not limiter.hit(1, LIMITS, MINUTE_START).decision.is_allowed
    assert limiter.hit(2, LIMITS, MINUTE_START).decision.is_allowed


def test_parallel_requests_pass_exactly_the_allowed_number(backend: str) -> None:
    limits = Limits(rate_milli_per_s=1, burst=1000, per_minute=37, per_hour=1000, per_day=1000)
    limiter = PlatformLimiter()
    barrier = threading.Barrier(16)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(10):
            ok = limiter.hit(42, limits, MINUTE_START).decision.is_allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 160
    assert sum(allowed) == 37


def test_redis_answer_carries_the_auth_generation(use_redis: str) -> None:
    client = redis_client.get_redis()
    assert client is not None
    client.set(AUTH_GENERATION_KEY, 17)
    assert PlatformLimiter().hit(1, LIMITS).auth_generation == 17


def test_redis_uses_its_own_clock_when_no_time_is_given(use_redis: str) -> None:
    result = PlatformLimiter().hit(1, LIMITS)
    import time

    assert abs(result.decision.now_ms - time.time() * 1000) < 5_000


@pytest.fixture
def redis_down(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    redis_client.reset_client()


def test_redis_down_falls_back_to_the_local_limiter(redis_down: None, settings: Any) -> None:
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "local"
    limiter = PlatformLimiter()
    results = [limiter.hit(1, LIMITS, MINUTE_START) for _ in range(6)]
    assert all(r.is_degraded for r in results)
    assert [r.decision.is_allowed for r in results] == [True] * 5 + [False]
    assert redis_client.is_breaker_open()  # later calls skip Redis instead of waiting on it


def test_redis_down_in_deny_mode_refuses_with_503_error(redis_down: None, settings: Any) -> None:
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "deny"
    with pytest.raises(RateLimiterUnavailable):
        PlatformLimiter().hit(1, LIMITS, MINUTE_START)


@pytest.fixture
def redis_server(use_redis: str) -> redis.Redis:
    """The limiter's Redis, for a test to act on it as an operator or a restart would."""
    client = redis_client.get_redis()
    assert client is not None
    return client


def minute_used(result: LimitResult) -> int:
    return {w.name: w.used for w in result.decision.windows}["minute"]


def test_a_flushed_script_is_loaded_again_and_the_request_spent_once(redis_server: redis.Redis) -> None:
    client = redis_server
    limiter = PlatformLimiter()
    assert limiter.hit(3, LIMITS, MINUTE_START).decision.is_allowed
    client.script_flush()  # as after a Redis restart: the script is gone, the link still open
    again = limiter.hit(3, LIMITS, MINUTE_START)
    assert not again.is_degraded
    assert minute_used(again) == 2
    assert again.decision.burst_remaining == LIMITS.burst - 2


def test_a_link_redis_closed_falls_back_once_then_a_new_link_serves(
    redis_server: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_server
    limiter = PlatformLimiter()
    assert not limiter.hit(4, LIMITS, MINUTE_START).is_degraded
    client.client_kill_filter(_type="normal", skipme=True)  # closes the limiter's link from Redis's side
    lost = limiter.hit(4, LIMITS, MINUTE_START)
    assert lost.is_degraded  # answered by the local limiter, per the default policy, not a 500
    assert redis_client.is_breaker_open()
    monkeypatch.setattr(redis_client, "_open_until", 0.0)  # as once the breaker's second has passed
    back = limiter.hit(4, LIMITS, MINUTE_START)
    assert not back.is_degraded
    assert minute_used(back) == 2  # Redis's count carried on


def test_after_redis_drops_its_clients_one_request_falls_back_not_one_per_idle_link(
    redis_server: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_server
    limiter = PlatformLimiter()
    in_flight = [limiter.begin(6, LIMITS, MINUTE_START) for _ in range(3)]  # three links in use at once
    assert not any(pending.result().is_degraded for pending in in_flight)
    assert limiter._redis is not None
    assert len(limiter._redis._idle) == 3
    client.client_kill_filter(_type="normal", skipme=True)  # as a Redis restart does to every link
    assert limiter.hit(6, LIMITS, MINUTE_START).is_degraded
    assert limiter._redis._idle == []  # the idle links went with the one that failed
    monkeypatch.setattr(redis_client, "_open_until", 0.0)  # the breaker's second has passed
    back = limiter.hit(6, LIMITS, MINUTE_START)
    assert not back.is_degraded  # a new link, not the next dead one
    assert minute_used(back) == 4


def test_an_error_reply_takes_the_fallback_and_the_link_serves_on(
    redis_server: redis.Redis, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_server
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "deny"
    client.set("hft:rl:5", "not a hash")  # the script's HMGET answers WRONGTYPE
    limiter = PlatformLimiter()
    with pytest.raises(RateLimiterUnavailable):  # the documented refusal, not a 500
        limiter.hit(5, LIMITS, MINUTE_START)
    client.delete("hft:rl:5")
    monkeypatch.setattr(redis_client, "_open_until", 0.0)
    assert limiter.hit(5, LIMITS, MINUTE_START).decision.is_allowed
    assert limiter._redis is not None
    assert len(limiter._redis._idle) == 1  # the same link, read clean
