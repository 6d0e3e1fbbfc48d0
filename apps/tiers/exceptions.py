"""Errors of the tiers app, each with a stable machine `code` and a `kind` the edge maps to a status.

Pure Python: domain code raises these too. The kinds are mapped to HTTP statuses in one place,
`hftplatform/exceptions.py`, and to WebSocket close codes by the consumers.
"""

from __future__ import annotations

from typing import Any


class TiersError(Exception):
    kind = "invalid"
    code = "invalid_request"

    def __init__(self, message: str, *, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        self.headers = headers or {}


class MissingAPIKey(TiersError):
    kind, code = "unauthenticated", "missing_api_key"


class InvalidAPIKey(TiersError):
    """Malformed, unknown, or a secret that does not match: deliberately one code, so as not to leak."""

    kind, code = "unauthenticated", "invalid_api_key"


class RevokedAPIKey(TiersError):
    kind, code = "unauthenticated", "revoked_api_key"


class ExpiredAPIKey(TiersError):
    kind, code = "unauthenticated", "expired_api_key"


class APIKeyHeaderTooLarge(TiersError):
    kind, code = "header_too_large", "api_key_header_too_large"


class ConflictingAPIKeys(TiersError):
    kind, code = "invalid", "conflicting_api_keys"


class CustomerSuspended(TiersError):
    kind, code = "forbidden", "customer_suspended"


class IPNotAllowed(TiersError):
    kind, code = "forbidden", "ip_not_allowed"


class MissingKeyPermission(TiersError):
    kind, code = "forbidden", "missing_permission"


class FeatureNotInTier(TiersError):
    kind, code = "forbidden", "feature_not_in_tier"


class RateLimited(TiersError):
    kind, code = "throttled", "rate_limited"


class RateLimiterUnavailable(TiersError):
    kind, code = "unavailable", "rate_limiter_unavailable"
