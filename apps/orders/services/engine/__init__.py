"""The paper engine: executes orders on the live in-memory books, rests the rest, and writes fills in batches.

Placement commits an order as PENDING (funds locked) and hands it to `engine_client().submit(...)` (the
order itself to an engine in the same process, its id over Redis); from then on the engine is the
order's single writer. Embedded, the engine runs in the embedded process
and the client calls it in-process; with Redis it runs under a lease (`manage.py runpaper` or the Celery
task) and the client sends commands over Redis. See docs/paper-engine.md for the matching rules.
"""

from __future__ import annotations

from django.conf import settings

from apps.orders.services.engine.client import EngineClient, EngineUnavailable
from apps.orders.services.engine.reports import ExecutionReport, FillReport

__all__ = ["EngineClient", "EngineUnavailable", "ExecutionReport", "FillReport", "engine_client"]


def engine_client() -> EngineClient:
    """In-process transport when embedded (no REDIS_URL), the Redis transport otherwise."""
    if settings.REDIS_URL:
        from apps.orders.services.engine.redis_transport import RedisEngineClient

        return RedisEngineClient.shared()
    from apps.orders.services.engine.runtime import InProcessEngineClient

    return InProcessEngineClient()
