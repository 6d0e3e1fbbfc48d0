"""API-key header parsing: Bearer or X-API-Key (or a query parameter for browsers' WebSockets)."""

from __future__ import annotations

import re

from apps.tiers.exceptions import APIKeyHeaderTooLarge, ConflictingAPIKeys, InvalidAPIKey, MissingAPIKey

# djangorestframework-api-key's format: an 8-character prefix, a dot, a 32-character secret.
KEY_RE = re.compile(r"^([A-Za-z0-9]{8})\.([A-Za-z0-9]{32})$")


def extract_key(authorization: str | None, x_api_key: str | None, query_key: str | None, max_len: int) -> str:
    """The one API key a request presents; raises a tiers error naming what is wrong."""
    candidates = []
    for raw in (authorization, x_api_key, query_key):
        if raw is not None and len(raw) > max_len:
            raise APIKeyHeaderTooLarge(f"API key header longer than {max_len} bytes.")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise InvalidAPIKey("Authorization must be 'Bearer <api key>'.")
        candidates.append(value.strip())
    if x_api_key:
        candidates.append(x_api_key.strip())
    if query_key:
        candidates.append(query_key.strip())
    if not candidates:
        raise MissingAPIKey("Send your API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
    if len(set(candidates)) > 1:
        raise ConflictingAPIKeys("Two different API keys were sent; send one.")
    return candidates[0]


def split_key(key: str) -> tuple[str, str]:
    """(prefix, secret) of a well-formed key; raises InvalidAPIKey otherwise."""
    match = KEY_RE.match(key)
    if match is None:
        raise InvalidAPIKey("The API key is not valid.")
    return match.group(1), match.group(2)
