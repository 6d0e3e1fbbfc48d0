"""Internal encoding of book events and trades for the bus (compact JSON; integers stay exact)."""

from __future__ import annotations

from typing import Any

import orjson

from .events import BookEvent, Trade


def event_fields(event: BookEvent) -> dict[str, Any]:
    return {
        "b": event.book,
        "s": event.seq,
        "k": event.kind,
        "bi": event.bids,
        "as": event.asks,
        "pe": event.price_exp,
        "se": event.size_exp,
        "et": event.exchange_ts_ns,
        "rt": event.receive_ts_ns,
        "pt": event.publish_ts_ns,
        "r": event.reason,
    }


def encode_event(event: BookEvent) -> bytes:
    return orjson.dumps(event_fields(event))


def decode_event(raw: bytes | str) -> BookEvent:
    d = orjson.loads(raw)
    return BookEvent(
        book=d["b"],
        seq=d["s"],
        kind=d["k"],
        bids=tuple((p, q) for p, q in d["bi"]),
        asks=tuple((p, q) for p, q in d["as"]),
        price_exp=d["pe"],
        size_exp=d["se"],
        exchange_ts_ns=d["et"],
        receive_ts_ns=d["rt"],
        publish_ts_ns=d["pt"],
        reason=d.get("r", ""),
    )


def encode_trade(trade: Trade) -> bytes:
    return orjson.dumps(
        {
            "v": trade.venue,
            "y": trade.symbol,
            "i": trade.trade_id,
            "p": trade.price,
            "q": trade.qty,
            "a": trade.aggressor,
            "et": trade.exchange_ts_ns,
            "rt": trade.receive_ts_ns,
        }
    )


def decode_trade(raw: bytes | str) -> Trade:
    d = orjson.loads(raw)
    return Trade(d["v"], d["y"], d["i"], d["p"], d["q"], d["a"], d["et"], d["rt"])
