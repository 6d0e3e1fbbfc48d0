"""Celery tasks of the tiers app (periodic, scheduled by beat)."""

from celery import shared_task

from apps.tiers.services.usage import flush_usage


@shared_task(ignore_result=True)
def flush_usage_task() -> int:
    """Move usage counters from Redis into PostgreSQL."""
    return flush_usage()
