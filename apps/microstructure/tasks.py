"""Celery tasks: the long-lived recorder on queue `feeds`, and its supervisor (which also prunes old bars)."""

import time

from celery import shared_task

from apps.microstructure.services.recorder import prune_metric_bars
from apps.microstructure.services.supervision import is_recorder_lapsed, run_leased_recorder


@shared_task(acks_late=False, ignore_result=True)
def run_micro_recorder_task(max_seconds: float | None = None) -> str:
    """Hold the recorder's lease and record (until the lease is lost, or for `max_seconds`)."""
    return run_leased_recorder(max_seconds=max_seconds)


@shared_task(ignore_result=True)
def supervise_microstructure() -> bool:
    """Start the recorder when its lease has lapsed, and prune bars past their retention."""
    prune_metric_bars(time.time_ns())
    if is_recorder_lapsed():
        run_micro_recorder_task.apply_async(queue="feeds")
        return True
    return False
