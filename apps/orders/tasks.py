"""Celery tasks: the paper engine as a long-lived task on queue `feeds`, and the beat job that restarts it."""

from __future__ import annotations

from celery import shared_task

from apps.orderbook.services.market import redis_client
from apps.orders.services.engine.redis_transport import is_engine_running, run_paper_engine


@shared_task(acks_late=False, ignore_result=True)
def run_paper_engine_task(max_seconds: float | None = None) -> str:
    """Hold the engine's lease and run it (until the lease is lost, or for `max_seconds`)."""
    return run_paper_engine(max_seconds=max_seconds)


@shared_task(ignore_result=True)
def supervise_paper_engine() -> bool:
    """Start the engine when its lease has lapsed; whether it was started."""
    if is_engine_running(redis_client()):
        return False
    run_paper_engine_task.apply_async(queue="feeds")
    return True
