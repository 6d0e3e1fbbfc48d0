"""REST authentication, access checks, rate-limit headers and refusals through the real middleware stack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.tiers.models import Customer, Tier
from apps.tiers.services import redis_client
from apps.tiers.services.accounts import assign_tier, revoke_key, set_customer_status
from apps.tiers.services.auth import key_cache
from apps.tiers.services.ratelimit import AUTH_GENERATION_KEY
from apps.tiers.tests.conftest import Persona, make_persona

URL = "/api/hft/rate-limits"
pytestmark = pytest.mark.django_db


def test_rate_limits_reports_tier_limits_and_live_usage(alice: Persona) -> None:
    client = alice.client()
    client.get(URL)
    body = client.get(URL).json()
    assert body["tier"] == "professional"
    assert body["tier_name"] == "Professional"
    assert body["rate_limits"] == {
        "requests_per_second": "50.000",
        "burst": 100,
        "requests_per_minute": 2000,
        "requests_per_hour": 50000,
        "requests_per_day": 500000,
    }
    assert body["current_usage"]["minute"]["used"] == 2
    assert body["current_usage"]["burst"]["remaining"] <= 98
    assert body["latency_sla_ms"] == 100
    assert "microstructure" in body["features"]
    assert body["co_location_ready"] is False
    assert body["limits"]["max_batch_size"] == 20


def test_every_response_carries_rate_limit_headers(alice: Persona) -> None:
    response = alice.client().get(URL)
    assert response.status_code == 200
    assert response["RateLimit-Policy"].startswith('"burst";q=100;w=2, "minute";q=2000;w=60')
    assert response["RateLimit"].startswith('"burst";r=99;')
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert response[name].isdigit()


def test_x_api_key_header_works_like_bearer(alice: Persona) -> None:
    client = APIClient()
    assert client.get(URL, HTTP_X_API_KEY=alice.secret).status_code == 200


def test_burst_exhausted_answers_429_naming_the_window(bob: Persona) -> None:
    client = bob.client()
    statuses = [client.get(URL).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    refused = client.get(URL)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["detail"]["window"] == "burst"
    assert int(refused["Retry-After"]) >= 1
    assert refused["X-RateLimit-Remaining"] == "0"
    assert "RateLimit-Policy" in refused


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_api_key"),
        ({"HTTP_AUTHORIZATION": "Bearer nonsense"}, 401, "invalid_api_key"),
        ({"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}, 401, "invalid_api_key"),
        ({"HTTP_AUTHORIZATION": "Bearer ZZZZZZZZ." + "a" * 32}, 401, "invalid_api_key"),
        ({"HTTP_X_API_KEY": "\x00\x01"}, 401, "invalid_api_key"),
        ({"HTTP_X_API_KEY": "k" * 100_000}, 431, "api_key_header_too_large"),
        ({"HTTP_AUTHORIZATION": "Bearer " + "k" * 5000}, 431, "api_key_header_too_large"),
    ],
)
def test_bad_credentials_get_a_coded_4xx_never_500(headers: dict[str, str], status: int, code: str) -> None:
    response = APIClient().get(URL, **headers)
    assert response.status_code == status
    assert response.json()["code"] == code
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_right_prefix_with_wrong_secret_is_invalid_not_revealing(alice: Persona) -> None:
    forged = alice.key.prefix + "." + "A" * 32
    response = APIClient().get(URL, HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


def test_revoked_key_stops_working_at_once(alice: Persona, django_capture_on_commit_callbacks: Any) -> None:
    client = alice.client()
    assert client.get(URL).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        revoke_key(alice.key)
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "revoked_api_key"


def test_expired_key_is_refused(db: None) -> None:
    carol = make_persona("Carol", "basic", expires_at=timezone.now() - timedelta(seconds=1))
    response = carol.client().get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "expired_api_key"


def test_suspended_customer_keys_stop_at_once_and_come_back(
    alice: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    client = alice.client()
    assert client.get(URL).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        set_customer_status(alice.customer, Customer.Status.SUSPENDED)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "customer_suspended"
    with django_capture_on_commit_callbacks(execute=True):
        set_customer_status(alice.customer, Customer.Status.ACTIVE)
    assert client.get(URL).status_code == 200


def test_ip_allow_list(db: None) -> None:
    dave = make_persona("Dave", "basic", allowed_cidrs="10.0.0.0/8")
    inside = dave.client().get(URL, REMOTE_ADDR="10.2.3.4")
    assert inside.status_code == 200
    outside = dave.client().get(URL, REMOTE_ADDR="192.0.2.1")
    assert outside.status_code == 403
    assert outside.json()["code"] == "ip_not_allowed"


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(db: None, settings: Any) -> None:
    dave = make_persona("Dave", "basic", allowed_cidrs="10.0.0.0/8")
    spoofed = dave.client().get(URL, REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert spoofed.status_code == 403
    settings.HFT_TRUSTED_PROXIES = ["192.0.2.1"]
    proxied = dave.client().get(URL, REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert proxied.status_code == 200


@pytest.mark.urls("apps.tiers.tests.urls_gating")
def test_feature_gating_names_the_cheapest_tier_that_has_it(bob: Persona, alice: Persona) -> None:
    refused = bob.client().get("/probe/microstructure")
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "feature_not_in_tier"
    assert body["detail"] == {"feature": "microstructure", "tier": "free", "available_from": "professional"}
    assert "professional" in body["message"]
    assert "RateLimit" in refused  # a refused request still spent and is told so
    assert alice.client().get("/probe/microstructure").status_code == 200


@pytest.mark.urls("apps.tiers.tests.urls_gating")
def test_trade_needs_the_keys_trade_permission(bob: Persona, alice: Persona) -> None:
    refused = bob.client().post("/probe/trade", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "missing_permission"
    assert alice.client().post("/probe/trade", {}, format="json").status_code == 200


def test_tier_change_takes_effect_on_the_next_request(bob: Persona, django_capture_on_commit_callbacks: Any) -> None:
    client = bob.client()
    assert client.get(URL).json()["tier"] == "free"
    with django_capture_on_commit_callbacks(execute=True):
        assign_tier(bob.customer, Tier.objects.get(slug="enterprise"))
    assert client.get(URL).json()["tier"] == "enterprise"


def test_a_customer_cannot_change_its_own_tier(bob: Persona) -> None:
    client = bob.client()
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(URL, {"tier": "hft"}, format="json")
        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"
    assert client.get(URL, {"tier": "hft"}, HTTP_X_TIER="hft").json()["tier"] == "free"
    bob.customer.refresh_from_db()
    assert bob.customer.tier.slug == "free"


def test_warm_requests_make_no_sql_queries(alice: Persona) -> None:
    client = alice.client()
    client.get(URL)  # warms the key cache
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert client.get(URL).status_code == 200
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_staff_change_in_another_process_reaches_this_one_through_redis(alice: Persona, use_redis: str) -> None:
    client = alice.client()
    assert client.get(URL).status_code == 200
    # Another process revokes the key: it writes the row and bumps the shared generation. Simulate
    # by writing the row without this process's signal handlers, then bumping Redis directly.
    type(alice.key).objects.filter(pk=alice.key.pk).update(revoked=True)
    assert client.get(URL).status_code == 200  # nothing has told this process yet
    redis = redis_client.get_redis()
    assert redis is not None
    redis.incr(AUTH_GENERATION_KEY)
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "revoked_api_key"


def test_redis_limiter_serves_the_request_path(alice: Persona, use_redis: str) -> None:
    client = alice.client()
    client.get(URL)
    body = client.get(URL).json()
    assert body["current_usage"]["minute"]["used"] == 2
    assert body["degraded"] is False
    redis = redis_client.get_redis()
    assert redis is not None
    state = redis.hmget(f"hft:rl:{alice.customer.pk}", "m", "mi")
    assert state == [b"2", str(body_minute_index(body)).encode()]
    assert redis.pttl(f"hft:rl:{alice.customer.pk}") > 0  # expires after the day window


def body_minute_index(body: dict[str, Any]) -> int:
    from datetime import datetime

    resets = datetime.fromisoformat(body["current_usage"]["minute"]["resets_at"].replace("Z", "+00:00"))
    return int(resets.timestamp()) // 60 - 1


def test_redis_down_serves_with_the_local_limiter_and_says_so(alice: Persona, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    redis_client.reset_client()
    response = alice.client().get(URL)
    assert response.status_code == 200
    assert response["X-RateLimit-Degraded"] == "local"
    assert response.json()["degraded"] is True


def test_redis_down_in_deny_mode_is_a_coded_503(alice: Persona, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "deny"
    redis_client.reset_client()
    response = alice.client().get(URL)
    assert response.status_code == 503
    assert response.json()["code"] == "rate_limiter_unavailable"
    assert response["Retry-After"] == "1"


def test_unknown_api_route_is_json_404(alice: Persona) -> None:
    response = alice.client().get("/api/hft/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_malformed_json_body_is_a_coded_400(alice: Persona) -> None:
    response = alice.client().post(URL, "{not json", content_type="application/json")
    assert response.status_code in (400, 405)
    assert "code" in response.json()


def test_key_cache_does_not_grow_without_bound_on_unknown_prefixes(db: None) -> None:
    for i in range(50):
        APIClient().get(URL, HTTP_AUTHORIZATION=f"Bearer {i:08d}." + "a" * 32)
    assert len(key_cache._entries) <= 50
