"""The usage flush as production runs it: a real Celery worker on Redis writing into PostgreSQL."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from apps.tiers.models import UsageRecord
from apps.tiers.services.usage import push_usage
from apps.tiers.tests.conftest import Persona
from conftest import start_celery_worker

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def worker(use_redis: str) -> Iterator[subprocess.Popen[str]]:
    process = start_celery_worker(use_redis)
    yield process
    process.terminate()
    process.wait(timeout=20)


def test_worker_moves_usage_from_redis_into_postgresql(alice: Persona, worker: subprocess.Popen[str]) -> None:
    client = alice.client()
    for _ in range(3):
        client.get("/api/hft/rate-limits")
    push_usage()  # this process's counts into Redis, as the background pusher does
    # A bare client, as beat is: it only names the task, on the worker's broker.
    Celery(broker=settings.REDIS_URL).send_task("apps.tiers.tasks.flush_usage_task")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not UsageRecord.objects.filter(api_key=alice.key).exists():
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else "worker died"
        time.sleep(0.2)
    record = UsageRecord.objects.get(api_key=alice.key)
    assert (record.requests, record.refusals, record.endpoint) == (3, 0, "api/hft/rate-limits")
    alice.key.refresh_from_db()
    assert alice.key.last_used_at is not None
