"""Fixtures of the tiers tests: Redis, and the two limiter backends (personas live in the root conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.tiers.services import redis_client
from conftest import Persona, make_persona, redis_url_or_skip

__all__ = ["Persona", "make_persona"]


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
