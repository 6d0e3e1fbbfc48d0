"""The dead man's switch: cancel all of a customer's open orders unless they re-arm it in time.

`arm_switch` (the API) pushes `fires_at` forward or disarms it with 0; `fire_due_switches` (the engine's
watcher, every ~200 ms) cancels for every switch past due, then disarms it only if it was not re-armed
meanwhile, so a re-arm racing a firing is never lost, and a failed cancel fires again on the next tick.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from apps.orders.domain.types import Reason
from apps.orders.exceptions import ExecutionUnavailable, InvalidTimeout
from apps.orders.models import DeadMansSwitch
from apps.orders.services.cancels import cancel_all_orders

logger = logging.getLogger(__name__)
MAX_TIMEOUT_MS = 86_400_000  # one day


def arm_switch(customer_id: int, timeout_ms: int, now: datetime) -> DeadMansSwitch:
    """Fire `timeout_ms` after `now`; 0 disarms. Each call replaces the previous deadline."""
    if not 0 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise InvalidTimeout(f"timeout_ms must be 0 (disarm) to {MAX_TIMEOUT_MS}.", detail={"timeout_ms": timeout_ms})
    fires_at = now + timedelta(milliseconds=timeout_ms) if timeout_ms else None
    switch, _ = DeadMansSwitch.objects.update_or_create(
        customer_id=customer_id, defaults={"fires_at": fires_at, "armed_at": now if timeout_ms else None}
    )
    return switch


def fire_due_switches(now: datetime) -> int:
    """Cancel all open orders of every customer whose switch is due; the number of switches fired."""
    fired = 0
    for switch in DeadMansSwitch.objects.filter(fires_at__lte=now).order_by("fires_at"):
        try:
            canceled = cancel_all_orders(switch.customer_id, Reason.DEAD_MANS_SWITCH)
        except ExecutionUnavailable:
            logger.warning("dead man's switch of customer %s: no engine to cancel with; retrying", switch.customer_id)
            continue  # still armed: the next tick tries again
        DeadMansSwitch.objects.filter(pk=switch.pk, fires_at=switch.fires_at).update(fires_at=None)
        logger.info("dead man's switch of customer %s fired: %d open orders canceled", switch.customer_id, canceled)
        fired += 1
    return fired
