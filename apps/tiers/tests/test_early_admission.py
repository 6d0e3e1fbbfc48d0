"""Admission begun by the middleware (the rate-limit round trip overlapping routing), finished by the view."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.tiers import authentication, middleware
from apps.tiers.domain.ratelimit import Limits
from apps.tiers.exceptions import RateLimiterUnavailable
from apps.tiers.services import redis_client
from apps.tiers.services.auth import BegunAdmission
from apps.tiers.services.ratelimit import PlatformLimiter
from apps.tiers.tests.conftest import Persona

URL = "/api/hft/rate-limits"
pytestmark = pytest.mark.django_db
LIMITS = Limits(rate_milli_per_s=1000, burst=5, per_minute=100, per_hour=1000, per_day=10_000)


@pytest.fixture
def begun(monkeypatch: pytest.MonkeyPatch) -> list[BegunAdmission | None]:
    """What the middleware's early start returned, request by request."""
    seen: list[BegunAdmission | None] = []

    def spy(request: Any) -> BegunAdmission | None:
        result = authentication.begin_early(request)
        seen.append(result)
        return result

    monkeypatch.setattr(middleware, "begin_early", spy)
    return seen


@pytest.fixture
def fresh_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authentication, "_admitting_paths", set())


def minute_count(persona: Persona) -> int:
    redis = redis_client.get_redis()
    assert redis is not None
    return int(redis.hget(f"hft:rl:{persona.customer.pk}", "m") or 0)


def test_a_path_learnt_to_authenticate_is_admitted_early_and_spent_once(
    alice: Persona, use_redis: str, fresh_paths: None, begun: list[BegunAdmission | None]
) -> None:
    client = alice.client()
    first = client.get(URL)  # the view authenticates: its path is learnt
    assert first.status_code == 200
    second = client.get(URL)
    third = client.get(URL)
    assert begun[0] is None
    assert begun[1] is not None
    assert begun[2] is not None
    assert begun[1].pending.is_answered
    assert begun[2].pending.is_answered
    assert (second.status_code, third.status_code) == (200, 200)
    assert third.json()["current_usage"]["minute"]["used"] == 3
    assert minute_count(alice) == 3  # one spend per request, early or not
    assert third["RateLimit"].startswith('"burst";r=97;')


def test_an_early_admission_answered_before_the_view_authenticates_is_still_reported(
    alice: Persona, use_redis: str, fresh_paths: None, begun: list[BegunAdmission | None]
) -> None:
    client = alice.client()
    client.get(URL)
    # DRF refuses an unmet Accept before it authenticates; the early admission had already spent.
    refused = client.get(URL, HTTP_ACCEPT="application/xml")
    assert refused.status_code == 406
    assert refused.json()["code"] == "not_acceptable"
    assert begun[1] is not None
    assert begun[1].pending.is_answered
    assert refused["RateLimit"].startswith('"burst";r=98;')
    assert minute_count(alice) == 2
    assert client.get(URL).json()["current_usage"]["minute"]["used"] == 3


def test_a_bad_key_on_a_learnt_path_is_reported_by_the_view(
    alice: Persona, fresh_paths: None, begun: list[BegunAdmission | None]
) -> None:
    alice.client().get(URL)
    response = APIClient().get(URL, HTTP_AUTHORIZATION="Bearer nonsense")
    assert begun[1] is None
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    assert "RateLimit" not in response


def test_unknown_routes_are_never_admitted_early(alice: Persona, fresh_paths: None) -> None:
    client = alice.client()
    for _ in range(2):
        response = client.get("/api/hft/no-such-thing")
        assert response.status_code == 404
        assert "RateLimit" not in response
    assert authentication._admitting_paths == set()


def test_a_pending_limit_answers_once(use_redis: str) -> None:
    pending = PlatformLimiter().begin(31, LIMITS)
    first = pending.result()
    assert pending.result() is first
    redis = redis_client.get_redis()
    assert redis is not None
    assert redis.hget("hft:rl:31", "m") == b"1"


def test_redis_down_in_deny_mode_refuses_when_answered_and_never_spends_locally(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "deny"
    redis_client.reset_client()
    limiter = PlatformLimiter()
    pending = limiter.begin(1, LIMITS)  # the failure is reported where the answer is read
    for _ in range(2):
        with pytest.raises(RateLimiterUnavailable):
            pending.result()
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "local"
    assert limiter.begin(1, LIMITS).result().decision.burst_remaining == 4  # the first local spend
