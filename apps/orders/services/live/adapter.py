"""The interface every live venue adapter implements: place, cancel and query one order by client order id.

An adapter speaks one venue's protocol and nothing else: the service layer loads credentials and symbols and
decides what a timeout means for the order. Adapters raise `VenueTimeout` when a request may have reached the
venue without an answer, and `VenueUnavailable` when it certainly did not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from apps.orders.services.live.types import LiveOrder, VenueCredentials, VenueOutcome


class VenueAdapter(ABC):
    """One live venue. `venue_symbol` is the venue's own symbol for the order's instrument."""

    @abstractmethod
    async def place(self, order: LiveOrder, venue_symbol: str, credentials: VenueCredentials) -> VenueOutcome:
        """Send the order once. A venue refusal is a REJECTED outcome, not an exception."""

    @abstractmethod
    async def cancel(self, order: LiveOrder, venue_symbol: str, credentials: VenueCredentials) -> VenueOutcome:
        """Cancel it; an order that can no longer be canceled answers its current state instead."""

    @abstractmethod
    async def query(self, order: LiveOrder, venue_symbol: str, credentials: VenueCredentials) -> VenueOutcome | None:
        """The order's state and every fill, found by client order id; None when the venue does not know it."""

    @abstractmethod
    def default_symbol(self, symbol: str) -> str:
        """The venue's symbol for one of ours ("BTC-USDT") when no orderbook Listing says otherwise."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing
        """Release connections held for the running event loop."""
