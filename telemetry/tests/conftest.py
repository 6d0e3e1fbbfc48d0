"""Fixtures of the telemetry tests: a settable clock, and a real, emptied Redis for cross-process merging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from conftest import redis_url_or_skip
from telemetry.layout import NS_PER_S

# A round start (an hour boundary) so slots and windows line up in the arithmetic of the tests.
T0_NS = 1_800_000_000 * NS_PER_S


class Clock:
    """Time as a parameter: tests move it by hand."""

    def __init__(self, now_ns: int = T0_NS) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * NS_PER_S)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A real Redis (REDIS_URL), emptied before and after."""
    client = redis.Redis.from_url(redis_url_or_skip())
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
