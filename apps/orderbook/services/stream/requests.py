"""Book WebSocket requests: the connection's query string and client ops, checked against the tier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from apps.orderbook.exceptions import StreamRequestError
from apps.orderbook.services.publisher import CONSOLIDATED
from apps.orderbook.services.reads import catalogue, resolve_book
from apps.orderbook.services.stream.frames import BookMeta

DEFAULT_DEPTH = 100
SLOW_CONSUMER_CLOSE = 4008
SLOW_CONSUMER_CLOSE_GRACE_S = 30.0  # time to read the backlog, the reason and the code before the drop
MAX_MESSAGE_BYTES = 4096


class StreamTier(Protocol):
    """What the stream needs of the caller's tier (the tiers app's TierInfo has it)."""

    max_book_depth: int | None
    max_subscriptions_per_connection: int
    delta_history_length: int
    features: frozenset[str]


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    pair: str
    venue: str | None
    depth: int | None  # None: the full book
    is_depth_capped: bool
    since_sequence: int | None
    wants_trades: bool = False


def parse_message(text: str) -> dict[str, Any]:
    if len(text) > MAX_MESSAGE_BYTES:
        raise StreamRequestError("message_too_large", f"Client messages are at most {MAX_MESSAGE_BYTES} bytes.")
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StreamRequestError("invalid_json", "Client messages are JSON objects.") from exc
    if not isinstance(message, dict):
        raise StreamRequestError("invalid_json", "Client messages are JSON objects.")
    return message


def parse_subscribe(params: dict[str, Any], tier: StreamTier) -> SubscribeRequest:
    """From the query string (strings) or a subscribe op (JSON values); depth capped by the tier."""
    pair = params.get("pair")
    if not isinstance(pair, str) or not pair:
        raise StreamRequestError("invalid_message", "'subscribe' needs a 'pair'.")
    venue = params.get("venue")
    if venue is not None and not isinstance(venue, str):
        raise StreamRequestError("invalid_venue", "'venue' is a venue slug.")
    depth, is_capped = parse_depth(params.get("depth"), tier.max_book_depth)
    since = parse_since(params.get("since_sequence"))
    return SubscribeRequest(pair, venue or None, depth, is_capped, since, parse_flag(params.get("trades"), "trades"))


def parse_flag(raw: Any, name: str) -> bool:
    if raw is None or raw in ("", "false", "0", False):
        return False
    if raw in ("true", "1", True):
        return True
    raise StreamRequestError("invalid_message", f"'{name}' is true or false.")


def parse_depth(raw: Any, cap: int | None) -> tuple[int | None, bool]:
    if raw is None or raw == "":
        return (DEFAULT_DEPTH if cap is None else min(cap, DEFAULT_DEPTH)), False
    if raw == "full":
        return cap, cap is not None
    try:
        depth = int(raw)
    except (TypeError, ValueError):
        depth = 0
    if isinstance(raw, bool) or depth < 1:
        raise StreamRequestError("invalid_depth", "depth is a positive number of levels, or 'full'.")
    if cap is not None and depth > cap:
        return cap, True
    return depth, False


def parse_since(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        since = int(raw)
    except (TypeError, ValueError):
        since = -1
    if isinstance(raw, bool) or since < 0:
        raise StreamRequestError("invalid_since_sequence", "since_sequence is the last sequence you applied (>= 0).")
    return since


def resolve_meta(pair: str, venue: str | None) -> BookMeta:
    """The book a pair and venue name, with the ids and decimals clients need (reference data, cached)."""
    symbol, label, book = resolve_book(pair, venue)
    instrument = catalogue().instruments[symbol]
    listings = {
        item["venue"]: (item["venue_id"], item["price_decimals"], item["size_decimals"])
        for item in instrument["venues"]
    }
    if label == CONSOLIDATED:
        venue_id, price_decimals, size_decimals = 0, instrument["price_decimals"], instrument["size_decimals"]
    else:
        venue_id, price_decimals, size_decimals = listings[label]
    return BookMeta(book, symbol, label, instrument["id"], venue_id, price_decimals, size_decimals, listings)
