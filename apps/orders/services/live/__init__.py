"""Live venue adapters: place, cancel and reconcile a customer's order on a real venue with their own key.

`place_live` never retries: a request that times out leaves the order UNKNOWN (reason `venue_timeout`), and
`reconcile_live` later asks the venue for it by client order id. `reconcile_unknown_orders` does that for
every UNKNOWN order in the database (a Celery beat job). See docs/live-venues.md.
"""

from __future__ import annotations

from apps.orders.services.live.errors import LiveVenueError, VenueTimeout, VenueUnavailable
from apps.orders.services.live.service import cancel_live, live_venues, place_live, reconcile_live
from apps.orders.services.live.types import LiveOrder, VenueOutcome

__all__ = [
    "LiveOrder",
    "LiveVenueError",
    "VenueOutcome",
    "VenueTimeout",
    "VenueUnavailable",
    "cancel_live",
    "live_venues",
    "place_live",
    "reconcile_live",
]
