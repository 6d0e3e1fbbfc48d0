"""Test-wide fixtures: personas (alice, bob), services (Redis), and CI's rule that nothing may skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

IN_CI = bool(os.environ.get("CI"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HFT_USAGE_BACKGROUND", "0")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if IN_CI and skipped:
        terminalreporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every service-backed test must run.")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _fresh_platform_state(settings: Any) -> Iterator[None]:
    """Each test starts with empty in-process caches and limiter, and the settings' Redis."""
    from apps.tiers.services import redis_client
    from apps.tiers.services.auth import key_cache
    from apps.tiers.services.ratelimit import limiter
    from apps.tiers.services.usage import accumulator

    settings.HFT_USAGE_BACKGROUND = False
    settings.REDIS_URL = ""  # the embedded limiter unless a test asks for Redis (use_redis)
    key_cache.invalidate()
    key_cache.generation = None
    limiter.memory.reset()
    accumulator.take()
    redis_client.reset_client()
    yield
    redis_client.reset_client()


def redis_url_or_skip() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL not set (CI sets it; this test needs a real Redis)")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {url} unreachable: {exc}")
    return url
