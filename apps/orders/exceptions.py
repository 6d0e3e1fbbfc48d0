"""Errors of the orders app, each with a stable machine `code` and a `kind` the edge maps to a status.

Rule failures of a single order (price off grid, insufficient balance, ...) are not exceptions: they are
reason codes on the order's result (`apps.orders.domain.types.Reason`). These are for whole requests.
"""

from __future__ import annotations

from typing import Any


class OrdersError(Exception):
    kind = "invalid"
    code = "invalid_request"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


class InvalidOrderRequest(OrdersError):
    """The request's shape is wrong (a field missing, not a decimal, an unknown side): nothing was placed."""

    kind, code = "invalid", "invalid_order_request"


class DuplicateClientOrderId(OrdersError):
    kind, code = "invalid", "duplicate_client_order_id"


class BatchTooLarge(OrdersError):
    kind, code = "too_large", "batch_too_large"


class OrderNotFound(OrdersError):
    """Unknown, or another customer's: deliberately one answer, so an id reveals nothing."""

    kind, code = "not_found", "order_not_found"


class OrderNotOpen(OrdersError):
    kind, code = "conflict", "order_not_open"


class InvalidTimeout(OrdersError):
    kind, code = "invalid", "invalid_timeout"


class InvalidCursor(OrdersError):
    kind, code = "invalid", "invalid_cursor"


class ExecutionUnavailable(OrdersError):
    """No execution engine took the command; the orders are committed and will execute when it returns."""

    kind, code = "unavailable", "execution_unavailable"


class UnknownVenue(OrdersError):
    """Credentials are kept only for venues with a live adapter (`live_venues()`)."""

    kind, code = "not_found", "unknown_venue"


class VenueCredentialNotFound(OrdersError):
    kind, code = "not_found", "venue_credential_not_found"


class VenueCredentialInUse(OrdersError):
    """Open orders on the venue still need the credential to be canceled or reconciled there."""

    kind, code = "conflict", "venue_credential_in_use"
