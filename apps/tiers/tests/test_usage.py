"""Usage metering: counted in memory on the request path, pushed to Redis, flushed into the database."""

from __future__ import annotations

from typing import Any

import pytest

from apps.tiers.models import UsageRecord
from apps.tiers.services import redis_client
from apps.tiers.services.usage import FLUSHING_KEY, PENDING_KEY, accumulator, flush_usage, push_usage
from apps.tiers.tests.conftest import Persona

URL = "/api/hft/rate-limits"
pytestmark = pytest.mark.django_db


def rows(persona: Persona) -> list[tuple[str, int, int, int]]:
    return [
        (r.endpoint, r.requests, r.refusals, r.bytes_out)
        for r in UsageRecord.objects.filter(api_key=persona.key).order_by("endpoint")
    ]


def test_requests_refusals_and_bytes_are_flushed_per_key_endpoint_minute(bob: Persona, backend: str) -> None:
    client = bob.client()
    sizes = [len(client.get(URL).content) for _ in range(7)]  # burst 5: 2 refusals
    assert flush_usage() == 1
    [(endpoint, requests, refusals, bytes_out)] = rows(bob)
    assert endpoint == "api/hft/rate-limits"
    assert (requests, refusals) == (7, 2)
    assert bytes_out == sum(sizes)
    bob.key.refresh_from_db()
    assert bob.key.last_used_at is not None


def test_flushes_add_up_instead_of_overwriting(alice: Persona, backend: str) -> None:
    client = alice.client()
    client.get(URL)
    flush_usage()
    client.get(URL)
    client.get(URL)
    flush_usage()
    [(_, requests, refusals, _)] = rows(alice)
    assert (requests, refusals) == (3, 0)


def test_usage_of_two_customers_stays_apart(alice: Persona, bob: Persona) -> None:
    alice.client().get(URL)
    bob.client().get(URL)
    bob.client().get(URL)
    flush_usage()
    assert rows(alice)[0][1] == 1
    assert rows(bob)[0][1] == 2
    assert set(UsageRecord.objects.values_list("customer__name", flat=True)) == {"Alice Capital", "Bob Trading"}


def test_unauthenticated_requests_are_not_metered_to_anyone(db: None) -> None:
    from rest_framework.test import APIClient

    APIClient().get(URL)
    flush_usage()
    assert UsageRecord.objects.count() == 0


def test_push_goes_to_redis_and_flush_moves_it_to_the_database(alice: Persona, use_redis: str) -> None:
    alice.client().get(URL)
    assert push_usage() == 1
    redis = redis_client.get_redis()
    assert redis is not None
    assert redis.hlen(PENDING_KEY) >= 2  # requests and bytes
    assert UsageRecord.objects.count() == 0
    flush_usage()
    assert rows(alice)[0][1] == 1
    assert not redis.exists(PENDING_KEY)
    assert not redis.exists(FLUSHING_KEY)


def test_a_failed_database_write_keeps_the_counts_for_the_next_flush(
    alice: Persona, use_redis: str, monkeypatch: Any
) -> None:
    from apps.tiers.services import usage

    alice.client().get(URL)
    monkeypatch.setattr(usage, "write_usage", _explode)
    with pytest.raises(RuntimeError):
        flush_usage()
    monkeypatch.undo()
    alice.client().get(URL)
    flush_usage()  # writes the left-over flushing hash first, the new pending on the next flush
    flush_usage()
    assert rows(alice)[0][1] == 2


def test_push_failure_gives_counts_back(alice: Persona, settings: Any) -> None:
    alice.client().get(URL)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    redis_client.reset_client()
    with pytest.raises(Exception, match=r"(?i)connect"):
        push_usage()
    counts, _ = accumulator.take()
    assert sum(v[0] for v in counts.values()) == 1


def _explode(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("database down")
