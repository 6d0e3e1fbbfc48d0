"""Book events and views as customers see them in JSON: decimal strings, best first, ns timestamps."""

from __future__ import annotations

from typing import Any

from .book import Level
from .events import BookEvent
from .fixedpoint import from_units


def levels_json(levels: list[Level] | tuple[Level, ...], price_exp: int, size_exp: int) -> list[list[str]]:
    return [[from_units(p, price_exp), from_units(q, size_exp)] for p, q in levels]


def event_json(event: BookEvent) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sequence": event.seq,
        "type": event.kind,
        "bids": levels_json(event.bids, event.price_exp, event.size_exp),
        "asks": levels_json(event.asks, event.price_exp, event.size_exp),
        "exchange_timestamp": event.exchange_ts_ns,
        "receive_timestamp": event.receive_ts_ns,
        "timestamp": event.publish_ts_ns,
    }
    if event.reason:
        body["reason"] = event.reason
    return body
