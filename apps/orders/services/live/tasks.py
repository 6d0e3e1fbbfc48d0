"""Celery task of the live adapters: the beat job that reconciles UNKNOWN live orders (settings CELERY_IMPORTS)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="apps.orders.services.live.tasks.reconcile_unknown_orders_task", ignore_result=True)
def reconcile_unknown_orders_task() -> int:
    from apps.orders.services.live.reconcile import reconcile_unknown_orders

    return reconcile_unknown_orders()
