"""Token bucket and quota windows, decided purely (no Django, no Redis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.tiers.domain.ratelimit import Bucket, Limits, decide, window_end_ms

FREE = Limits(rate_milli_per_s=2000, burst=5, per_minute=60, per_hour=1000, per_day=10_000)
T0 = 1_700_000_000_000  # a minute boundary: 1_700_000_000_000 % 60_000 == 20_000, see below


def run(limits: Limits, times_ms: list[int]) -> list[bool]:
    """Replay request times against one bucket and in-memory windows; return which were allowed."""
    bucket: Bucket | None = None
    counts: dict[tuple[str, int], int] = {}
    allowed = []
    for now in times_ms:
        used = {name: counts.get((name, window_end_ms(now, length)), 0) for name, length in _windows()}
        decision, new_bucket = decide(limits, bucket, used, now)
        if new_bucket is not None:
            bucket = new_bucket
            for name, length in _windows():
                key = (name, window_end_ms(now, length))
                counts[key] = counts.get(key, 0) + 1
        allowed.append(decision.is_allowed)
    return allowed


def _windows() -> tuple[tuple[str, int], ...]:
    return (("minute", 60), ("hour", 3600), ("day", 86400))


def test_burst_of_five_then_refused_then_refilled_at_two_per_second() -> None:
    allowed = run(FREE, [T0] * 7 + [T0 + 499, T0 + 500, T0 + 1000])
    # 5 burst, 2 refused; after 500 ms one token (2/s) is back, at 1000 ms another.
    assert allowed == [True] * 5 + [False, False, False, True, True]


def test_refusal_names_burst_and_when_a_token_returns() -> None:
    bucket = Bucket(tokens_micro=0, ts_ms=T0)
    decision, stored = decide(FREE, bucket, {}, T0 + 100)
    assert not decision.is_allowed
    assert decision.denied_by == "burst"
    # 0.2 tokens back after 100 ms at 2/s; 0.8 more need 400 ms.
    assert decision.retry_after_ms == 400
    assert stored is None


def test_minute_quota_refuses_until_the_window_rolls_over() -> None:
    limits = Limits(rate_milli_per_s=1_000_000, burst=1000, per_minute=3, per_hour=100, per_day=100)
    start = (T0 // 60_000) * 60_000 + 59_000  # one second before a minute boundary
    allowed = run(limits, [start, start, start, start + 500, start + 1000, start + 1001])
    assert allowed == [True, True, True, False, True, True]


def test_refused_request_reports_the_longest_window_that_ran_out() -> None:
    limits = Limits(rate_milli_per_s=1000, burst=1, per_minute=10, per_hour=10, per_day=10)
    decision, _ = decide(limits, Bucket(0, T0), {"minute": 10, "hour": 10, "day": 10}, T0)
    assert decision.denied_by == "day"
    assert decision.retry_after_ms == window_end_ms(T0, 86400) - T0


def test_refusal_spends_nothing() -> None:
    limits = Limits(rate_milli_per_s=1000, burst=2, per_minute=1, per_hour=10, per_day=10)
    decision, stored = decide(limits, None, {"minute": 1}, T0)
    assert not decision.is_allowed
    assert stored is None
    assert [w.used for w in decision.windows] == [1, 0, 0]


def test_fractional_rate_is_exact_over_time() -> None:
    half = Limits(rate_milli_per_s=500, burst=1, per_minute=1000, per_hour=1000, per_day=1000)
    times = [T0 + i * 100 for i in range(0, 41)]  # 4 s, a request every 100 ms
    # One token at start, then one every 2 s: at 0, 2000 and 4000 ms.
    assert sum(run(half, times)) == 3


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=2_000_000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=60),
)
def test_allowed_never_exceeds_burst_plus_refill(rate: int, burst: int, gaps: list[int]) -> None:
    limits = Limits(rate_milli_per_s=rate, burst=burst, per_minute=10**9, per_hour=10**9, per_day=10**9)
    times = [T0]
    for gap in gaps:
        times.append(times[-1] + gap)
    allowed = sum(run(limits, times))
    elapsed_ms = times[-1] - times[0]
    assert allowed <= burst + (elapsed_ms * rate) // 1_000_000
    assert allowed >= min(len(times), burst)


@settings(max_examples=100, deadline=None)
@given(per_minute=st.integers(min_value=1, max_value=30), n=st.integers(min_value=0, max_value=60))
def test_window_never_admits_more_than_its_quota(per_minute: int, n: int) -> None:
    limits = Limits(rate_milli_per_s=10**9, burst=10**6, per_minute=per_minute, per_hour=10**6, per_day=10**6)
    start = (T0 // 60_000) * 60_000
    assert sum(run(limits, [start + i for i in range(n)])) == min(n, per_minute)
