"""Stream messages encoded once per format: JSON (docs/streaming.md) and binary (docs/binary-protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from apps.orderbook.domain import binary
from apps.orderbook.domain.events import SNAPSHOT, STALE, BookEvent, Trade
from apps.orderbook.domain.fixedpoint import from_units
from apps.orderbook.domain.render import levels_json
from apps.orderbook.services.stream.edge import Frame

JSON = "json"
BINARY = "binary"
FORMATS = (JSON, BINARY)


@dataclass(frozen=True, slots=True)
class BookMeta:
    """A streamed book as clients name it, and the ids the binary protocol uses for it."""

    book: str  # "consolidated:BTC-USDT"
    pair: str  # "BTC-USDT"
    venue: str  # "consolidated", "binance", ...
    instrument_id: int
    venue_id: int  # 0 = consolidated
    price_decimals: int
    size_decimals: int
    # Each venue listing the instrument: slug -> (venue id, price decimals, size decimals), for its trades.
    listings: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def book_frame(fmt: str, meta: BookMeta, event: BookEvent, reason: str = "") -> Frame:
    """A snapshot, delta or stale message for `event` (its levels are the window's, at a depth)."""
    if fmt == BINARY:
        return Frame(binary.encode_event(event, meta.instrument_id, meta.venue_id, reason=reason), is_binary=True)
    body: dict[str, Any] = {"type": event.kind, "pair": meta.pair, "venue": meta.venue, "sequence": event.seq}
    if event.kind == STALE:
        body["reason"] = event.reason
        body["timestamp"] = event.publish_ts_ns
        return Frame(orjson.dumps(body), is_binary=False)
    if event.kind == SNAPSHOT:
        body["reason"] = reason or "reset"
    body["bids"] = levels_json(event.bids, event.price_exp, event.size_exp)
    body["asks"] = levels_json(event.asks, event.price_exp, event.size_exp)
    body["exchange_timestamp"] = event.exchange_ts_ns
    body["receive_timestamp"] = event.receive_ts_ns
    body["timestamp"] = event.publish_ts_ns
    return Frame(orjson.dumps(body), is_binary=False)


def trade_frame(fmt: str, meta: BookMeta, trade: Trade) -> Frame | None:
    """A trade on one of the instrument's venues; None for a venue the catalogue does not list."""
    listing = meta.listings.get(trade.venue)
    if listing is None:
        return None
    venue_id, price_exp, size_exp = listing
    if fmt == BINARY:
        payload = binary.encode_trade(
            meta.instrument_id, venue_id, trade.trade_id, trade.price, trade.qty, trade.aggressor,
            trade.exchange_ts_ns, trade.receive_ts_ns, price_exp, size_exp,
        )  # fmt: skip
        return Frame(payload, is_binary=True)
    body = {
        "type": "trade",
        "pair": meta.pair,
        "venue": trade.venue,
        "trade_id": trade.trade_id,
        "price": from_units(trade.price, price_exp),
        "size": from_units(trade.qty, size_exp),
        "aggressor": trade.aggressor,
        "exchange_timestamp": trade.exchange_ts_ns,
        "receive_timestamp": trade.receive_ts_ns,
    }
    return Frame(orjson.dumps(body), is_binary=False)


def heartbeat_frame(fmt: str, meta: BookMeta, seq: int, now_ns: int) -> Frame:
    if fmt == BINARY:
        return Frame(binary.encode_heartbeat(meta.instrument_id, meta.venue_id, seq, now_ns), is_binary=True)
    body = {"type": "heartbeat", "pair": meta.pair, "venue": meta.venue, "sequence": seq, "timestamp": now_ns}
    return Frame(orjson.dumps(body), is_binary=False)


def error_frame(fmt: str, request_id: Any, code: str, message: str, detail: Any = None) -> Frame:
    if fmt == BINARY:
        numeric_id = request_id if isinstance(request_id, int) and 0 <= request_id < 2**32 else 0
        return Frame(binary.encode_error(numeric_id, code, message), is_binary=True)
    body: dict[str, Any] = {"type": "error", "id": request_id, "code": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return Frame(orjson.dumps(body), is_binary=False)


def control_frame(body: dict[str, Any]) -> Frame:
    """Acknowledgements (subscribed, unsubscribed, pong): JSON text in both formats (they are rare)."""
    return Frame(orjson.dumps(body), is_binary=False)
