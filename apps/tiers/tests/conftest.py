"""Fixtures of the tiers tests: personas with keys, and the two limiter backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.tiers.models import APIKey, Customer, Tier
from apps.tiers.services import redis_client
from apps.tiers.services.accounts import issue_key
from conftest import redis_url_or_skip


@dataclass
class Persona:
    customer: Customer
    key: APIKey
    secret: str

    def client(self, **headers: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret}", **headers)
        return client


def make_persona(name: str, tier_slug: str, **key_options: Any) -> Persona:
    customer = Customer.objects.create(name=name, tier=Tier.objects.get(slug=tier_slug))
    key, secret = issue_key(customer, label=f"{name} key", **key_options)
    return Persona(customer, key, secret)


@pytest.fixture
def alice(db: None) -> Persona:
    """A professional-tier customer with a read-and-trade key."""
    return make_persona("Alice Capital", "professional", can_trade=True)


@pytest.fixture
def bob(db: None) -> Persona:
    """A free-tier customer with a read-only key."""
    return make_persona("Bob Trading", "free")


@pytest.fixture
def use_redis(settings: Any) -> Iterator[str]:
    """Point the platform's limiter, usage and invalidation at a real, emptied Redis."""
    url = redis_url_or_skip()
    settings.REDIS_URL = url
    redis_client.reset_client()
    client = redis_client.get_redis()
    assert client is not None
    client.flushdb()
    yield url
    client.flushdb()
    redis_client.reset_client()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, settings: Any) -> str:
    """Run a test against the embedded limiter and again against Redis."""
    if request.param == "redis":
        request.getfixturevalue("use_redis")
    else:
        settings.REDIS_URL = ""
    return str(request.param)
