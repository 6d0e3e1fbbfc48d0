"""Test-wide fixtures: personas (alice, bob), services (Redis), and CI's rule that nothing may skip."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rest_framework.test import APIClient

    from apps.tiers.models import APIKey, Customer

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
    from apps.orderbook.services.market import reset_market
    from apps.orderbook.services.reads import forget_catalogue
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
    reset_market()
    forget_catalogue()
    yield
    redis_client.reset_client()
    reset_market()


VENUES_DIR = Path(__file__).resolve().parent.parent / "shared" / "data" / "venues"


def recording(name: str) -> Path:
    """A recorded venue file from ../shared (CI has it; elsewhere the test skips with a reason)."""
    path = VENUES_DIR / name
    if not path.exists():
        pytest.skip(f"{path} not found: the recordings live in ../shared/data/venues")
    return path


@pytest.fixture
def market_redis(settings: Any) -> Iterator[str]:
    """Point the market-data bus at a real, emptied Redis."""
    url = redis_url_or_skip()
    settings.REDIS_URL = url
    import redis

    from apps.orderbook.services.market import reset_market

    client = redis.Redis.from_url(url)
    client.flushdb()
    reset_market()
    yield url
    reset_market()
    client.flushdb()


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


@dataclass
class Persona:
    """A customer with one API key, and an API client that sends it."""

    customer: Customer
    key: APIKey
    secret: str

    def client(self, **headers: str) -> APIClient:
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret}", **headers)
        return client


def make_persona(name: str, tier_slug: str, **key_options: Any) -> Persona:
    from apps.tiers.models import Customer, Tier
    from apps.tiers.services.accounts import issue_key

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
def carol(db: None) -> Persona:
    """A basic-tier customer (delta history of 100)."""
    return make_persona("Carol Markets", "basic")


def start_celery_worker(redis_url: str, *, queue: str = "celery", **env: str) -> subprocess.Popen[str]:
    """A real Celery worker of the project on `redis_url`, sharing this test run's database (PostgreSQL)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the worker and the test must share the database")
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "HFT_USAGE_BACKGROUND": "0",
        **env,
    }
    command = [sys.executable, "-m", "celery", "-A", "hftplatform", "worker", "-Q", queue, "--pool=solo"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"]
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command,
        cwd=Path(__file__).resolve().parent,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
