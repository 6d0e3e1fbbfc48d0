"""Errors of the live adapters, each with a stable machine `code` and a `kind` the edge maps to an HTTP status.

Placement never raises these for a per-order problem (it answers a REJECTED or UNKNOWN outcome); cancel and
reconcile raise them when the venue gave no usable answer, leaving the order as it was.
"""

from __future__ import annotations

from typing import Any


class LiveVenueError(Exception):
    kind = "unavailable"
    code = "live_venue_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


class VenueTimeout(LiveVenueError):
    code = "venue_timeout"


class VenueUnavailable(LiveVenueError):
    code = "venue_unavailable"


class VenueProtocolError(LiveVenueError):
    """The venue answered something we cannot read (an unknown status, a malformed body)."""

    code = "venue_protocol_error"


class UnknownLiveVenue(LiveVenueError):
    kind, code = "invalid", "unknown_venue"


class CredentialError(LiveVenueError):
    """A customer's venue credential is missing, or cannot be decrypted with this deployment's key."""

    kind, code = "invalid", "venue_credentials_invalid"


class CredentialMissing(CredentialError):
    kind, code = "not_found", "venue_credentials_missing"
