"""Messages of the order-book stream, the same types from JSON and binary frames, with exact Decimal levels."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

Level = tuple[Decimal, Decimal]  # (price, size); size 0 removes the level

CONSOLIDATED = "consolidated"
_EXACT = Context(prec=60)  # wide enough for any i64 at any exponent, whatever the caller's context


class DecodeError(ValueError):
    """A frame that is not a message of the protocol (truncated, another version, malformed JSON)."""


def units_to_decimal(units: int, decimals: int) -> Decimal:
    """Fixed-point units to their exact value: 6732112 at 2 decimals → Decimal("67321.12")."""
    return Decimal(units).scaleb(-decimals, _EXACT)


def book_key(venue: str, pair: str) -> str:
    """The server's book id: `consolidated:BTC-USDT`."""
    return f"{venue}:{pair}"


def normalise_pair(pair: str) -> str:
    """`btc/usdt` and `BTC-USDT` name the same book."""
    return pair.strip().upper().replace("/", "-").replace("_", "-")


@dataclass(frozen=True, slots=True)
class Source:
    """Which book a market message belongs to: JSON frames name it, binary frames number it."""

    pair: str | None = None
    venue: str | None = None
    instrument_id: int | None = None
    venue_id: int | None = None


@dataclass(frozen=True, slots=True)
class BookMessage:
    """A `snapshot` (the whole book; `reason` says why) or a `delta` (changed levels, absolute sizes)."""

    type: str
    sequence: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    exchange_timestamp: int | None
    receive_timestamp: int | None
    timestamp: int
    reason: str = ""
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sequence: int
    timestamp: int
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class Stale:
    """The venue book can no longer be trusted: keep the sequence, distrust the levels, await a snapshot."""

    sequence: int
    timestamp: int
    reason: str
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    price: Decimal
    size: Decimal
    aggressor: str  # "buy" (the buyer took liquidity), "sell", or "" when the venue does not say
    exchange_timestamp: int | None
    receive_timestamp: int
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    id: int | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Subscribed:
    id: int | None
    pair: str
    venue: str
    book: str
    instrument_id: int
    venue_id: int
    depth: int | str
    depth_capped: bool
    price_decimals: int
    size_decimals: int
    format: str


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    id: int | None
    pair: str
    venue: str


@dataclass(frozen=True, slots=True)
class Pong:
    id: int | None
    timestamp: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """A message type this client does not know (a newer server): passed on, never fatal."""

    type: str
    body: dict[str, Any]


MarketMessage = BookMessage | Heartbeat | Stale | Trade
Message = BookMessage | Heartbeat | Stale | Trade | ErrorMessage | Subscribed | Unsubscribed | Pong | Unknown


def parse_json(text: str | bytes) -> Message:
    """One JSON text frame of the stream (docs/streaming.md)."""
    try:
        body = json.loads(text)
        kind = body["type"]
        parse = _PARSERS.get(kind)
        return parse(body) if parse is not None else Unknown(str(kind), body)
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise DecodeError(f"not a stream message: {exc}") from exc


def _levels(raw: list[list[str]]) -> tuple[Level, ...]:
    return tuple((Decimal(price), Decimal(size)) for price, size in raw)


def _source(body: dict[str, Any]) -> Source:
    return Source(body.get("pair"), body.get("venue"), body.get("instrument_id"), body.get("venue_id"))


def _book(body: dict[str, Any]) -> BookMessage:
    return BookMessage(
        type=body["type"],
        sequence=body["sequence"],
        bids=_levels(body["bids"]),
        asks=_levels(body["asks"]),
        exchange_timestamp=body.get("exchange_timestamp"),
        receive_timestamp=body.get("receive_timestamp"),
        timestamp=body["timestamp"],
        reason=body.get("reason", ""),
        source=_source(body),
    )


def _trade(body: dict[str, Any]) -> Trade:
    return Trade(
        trade_id=str(body["trade_id"]),
        price=Decimal(body["price"]),
        size=Decimal(body["size"]),
        aggressor=body.get("aggressor", ""),
        exchange_timestamp=body.get("exchange_timestamp"),
        receive_timestamp=body["receive_timestamp"],
        source=_source(body),
    )


def _subscribed(body: dict[str, Any]) -> Subscribed:
    return Subscribed(
        id=body.get("id"),
        pair=body["pair"],
        venue=body["venue"],
        book=body.get("book") or book_key(body["venue"], body["pair"]),
        instrument_id=body["instrument_id"],
        venue_id=body["venue_id"],
        depth=body["depth"],
        depth_capped=bool(body.get("depth_capped", False)),
        price_decimals=body["price_decimals"],
        size_decimals=body["size_decimals"],
        format=body.get("format", "json"),
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    "snapshot": _book,
    "delta": _book,
    "heartbeat": lambda b: Heartbeat(b["sequence"], b["timestamp"], _source(b)),
    "stale": lambda b: Stale(b["sequence"], b["timestamp"], b.get("reason", ""), _source(b)),
    "trade": _trade,
    "error": lambda b: ErrorMessage(b.get("id"), b["code"], b.get("message", "")),
    "subscribed": _subscribed,
    "unsubscribed": lambda b: Unsubscribed(b.get("id"), b["pair"], b.get("venue", CONSOLIDATED)),
    "pong": lambda b: Pong(b.get("id"), b["timestamp"]),
}
