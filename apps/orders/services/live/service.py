"""The live-order use cases: place, cancel and reconcile one order on its venue with the customer's own key.

Placement is sent exactly once. A timeout answers UNKNOWN (`venue_timeout`) and the order is never re-sent:
`reconcile_live` asks the venue by client order id. The reconciliation rule for an order the venue does not
know: Binance refuses any request whose `timestamp` is more than `recvWindow` old when it reaches the
matching engine, so once `sent_before + recvWindow + grace` has passed an unknown order can never appear and
is REJECTED `venue_timeout`; before that it stays UNKNOWN.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from apps.orders.domain.types import OrderStatus, Reason
from apps.orders.services.live.adapter import VenueAdapter
from apps.orders.services.live.errors import (
    CredentialError,
    CredentialMissing,
    UnknownLiveVenue,
    VenueProtocolError,
    VenueTimeout,
    VenueUnavailable,
)
from apps.orders.services.live.types import LiveOrder, VenueCredentials, VenueOutcome

logger = logging.getLogger(__name__)


def live_venues() -> frozenset[str]:
    """Venue slugs with a live adapter configured (`HFT_LIVE_VENUES`); orders name "paper" or one of these."""
    return frozenset(_venue_config())


async def place_live(order: LiveOrder) -> VenueOutcome:
    """Send the order once; never raises for a per-order problem (an outcome says REJECTED or UNKNOWN)."""
    try:
        adapter = adapter_for(order.venue)
        credentials, venue_symbol = await _load_context(order, adapter)
    except UnknownLiveVenue:
        return _outcome(OrderStatus.REJECTED, Reason.UNKNOWN_VENUE)
    except CredentialMissing:
        return _outcome(OrderStatus.REJECTED, Reason.VENUE_CREDENTIALS_MISSING)
    except CredentialError as exc:
        logger.error("live order %s not sent: %s", order.order_id, exc)
        return _outcome(OrderStatus.REJECTED, Reason.VENUE_CREDENTIALS_INVALID)
    try:
        return await adapter.place(order, venue_symbol, credentials)
    except (VenueTimeout, VenueProtocolError) as exc:
        logger.warning("live order %s left UNKNOWN: %s", order.order_id, exc)
        return _outcome(OrderStatus.UNKNOWN, Reason.VENUE_TIMEOUT)
    except VenueUnavailable as exc:
        logger.warning("live order %s not sent: %s", order.order_id, exc)
        return _outcome(OrderStatus.REJECTED, Reason.VENUE_UNAVAILABLE)


async def cancel_live(order: LiveOrder) -> VenueOutcome:
    """Cancel at the venue; the answer is the order's state there. Raises `LiveVenueError` without an answer."""
    adapter = adapter_for(order.venue)
    credentials, venue_symbol = await _load_context(order, adapter)
    return await adapter.cancel(order, venue_symbol, credentials)


async def reconcile_live(order: LiveOrder) -> VenueOutcome:
    """The venue's state of an order by client order id (module docstring: the "does not exist" rule).

    Raises `LiveVenueError` (e.g. `VenueTimeout`) when the venue gives no answer: the order stays as it is.
    """
    adapter = adapter_for(order.venue)
    credentials, venue_symbol = await _load_context(order, adapter)
    outcome = await adapter.query(order, venue_symbol, credentials)
    if outcome is not None:
        return outcome
    if order.sent_before is not None and datetime.now(UTC) >= order.sent_before + acceptance_window():
        return _outcome(OrderStatus.REJECTED, Reason.VENUE_TIMEOUT)
    return _outcome(OrderStatus.UNKNOWN, Reason.VENUE_TIMEOUT)


def acceptance_window() -> timedelta:
    """How long after it was sent a request can still reach the matching engine: recvWindow plus clock skew."""
    return timedelta(milliseconds=settings.HFT_LIVE_RECV_WINDOW_MS, seconds=settings.HFT_LIVE_RECONCILE_GRACE_S)


def adapter_for(venue: str) -> VenueAdapter:
    config = _venue_config().get(venue)
    if config is None:
        raise UnknownLiveVenue(f"no live adapter for venue {venue!r}", detail={"venue": venue})
    return _adapter(
        venue,
        config["adapter"],
        config["base_url"],
        float(settings.HFT_LIVE_TIMEOUT_S),
        int(settings.HFT_LIVE_RECV_WINDOW_MS),
    )


@cache
def _adapter(venue: str, kind: str, base_url: str, timeout_s: float, recv_window_ms: int) -> VenueAdapter:
    # One adapter per configuration, so its kept-alive connections are reused across orders.
    if kind == "binance_spot":
        from apps.orders.services.live.binance import BinanceSpotAdapter

        return BinanceSpotAdapter(base_url, timeout_s=timeout_s, recv_window_ms=recv_window_ms)
    raise UnknownLiveVenue(f"venue {venue!r} names an unknown adapter {kind!r}")


async def aclose_adapters() -> None:
    """Close the connections every adapter holds for the running event loop (tests, shutdown)."""
    for venue in _venue_config():
        await adapter_for(venue).aclose()


def _venue_config() -> dict[str, dict[str, Any]]:
    return dict(getattr(settings, "HFT_LIVE_VENUES", {}))


async def _load_context(order: LiveOrder, adapter: VenueAdapter) -> tuple[VenueCredentials, str]:
    # thread_sensitive: under async_to_sync the ORM runs on the calling thread, in its connection and transaction.
    return await sync_to_async(_load_context_sync, thread_sensitive=True)(order, adapter)


def _load_context_sync(order: LiveOrder, adapter: VenueAdapter) -> tuple[VenueCredentials, str]:
    try:
        return _read_context(order, adapter)
    finally:
        if not connection.in_atomic_block:
            # Outside a request nothing else returns this thread's connection (CONN_MAX_AGE=0): give it back
            # now, so a long-lived caller (the engine's live loop) never holds a stale one.
            connection.close()


def _read_context(order: LiveOrder, adapter: VenueAdapter) -> tuple[VenueCredentials, str]:
    from apps.orderbook.models import Listing
    from apps.orders.models import VenueCredential
    from apps.orders.services.credentials import decrypt_secret

    credential = VenueCredential.objects.filter(customer_id=order.customer_id, venue=order.venue).first()
    if credential is None:
        raise CredentialMissing(f"no {order.venue} credential stored for customer {order.customer_id}")
    listed = Listing.objects.filter(venue__slug=order.venue, instrument__symbol=order.symbol)
    venue_symbol = listed.values_list("venue_symbol", flat=True).first() or adapter.default_symbol(order.symbol)
    return VenueCredentials(credential.api_key, decrypt_secret(credential.secret_encrypted)), venue_symbol


def _outcome(status: OrderStatus, reason: Reason) -> VenueOutcome:
    return VenueOutcome(
        status=status,
        reason=reason.value,
        venue_order_id="",
        filled_quantity=Decimal(0),
        average_price=None,
        fees=Decimal(0),
        fee_currency="",
    )
