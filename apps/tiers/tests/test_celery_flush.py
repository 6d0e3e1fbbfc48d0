"""The usage flush as production runs it: a real Celery worker on Redis writing into PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from apps.tiers.models import UsageRecord
from apps.tiers.services.usage import push_usage
from apps.tiers.tests.conftest import Persona

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def worker(use_redis: str) -> Any:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the worker and the test must share the database")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": use_redis,
        "HFT_USAGE_BACKGROUND": "0",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hftplatform",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
