"""Celery tasks: long-lived feed runners and the consolidator on queue `feeds`, and their supervisor."""

from celery import shared_task

from apps.orderbook.services.market import configured_feeds, redis_client
from apps.orderbook.services.supervision import CONSOLIDATOR, lapsed_feeds, run_consolidator, run_feed


@shared_task(acks_late=False, ignore_result=True)
def run_feed_task(name: str, max_seconds: float | None = None) -> str:
    """Hold the feed's lease and run it (until the lease is lost, or for `max_seconds`)."""
    return run_feed(name, max_seconds=max_seconds)


@shared_task(acks_late=False, ignore_result=True)
def run_consolidator_task() -> str:
    return run_consolidator()


@shared_task(ignore_result=True)
def supervise_feeds() -> list[str]:
    """Start a runner for every feed (and the consolidator) whose lease has lapsed."""
    started = lapsed_feeds(redis_client(), configured_feeds())
    for name in started:
        if name == CONSOLIDATOR:
            run_consolidator_task.apply_async(queue="feeds")
        else:
            run_feed_task.apply_async(args=(name,), queue="feeds")
    return started
