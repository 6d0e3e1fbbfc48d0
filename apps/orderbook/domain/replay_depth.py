"""A Binance REST depth snapshot as the venue would answer it now, rebuilt from a recording.

A recording holds the snapshots fetched while recording, not the ones a connector asks for after a
resync. The venue's book at any point of the replay is the recorded snapshot plus every recorded diff of
that symbol served since (a frame that a fault dropped still happened at the venue), so the replay venue
answers a second depth request with that book and its last update id, as Binance would.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import orjson

from .recording import Frame


def live_binance_depth(snapshot_body: str, frames: Sequence[Frame], upto_origin: int, symbol: str, limit: int) -> str:
    snapshot = orjson.loads(snapshot_body)
    last_id = int(snapshot["lastUpdateId"])
    book = {"b": {p: q for p, q in snapshot["bids"]}, "a": {p: q for p, q in snapshot["asks"]}}
    symbol = symbol.upper()
    for frame in frames[: upto_origin + 1]:
        if '"depthUpdate"' not in frame.text:
            continue
        message = orjson.loads(frame.text)
        data = message.get("data", message)
        if data.get("s", "").upper() != symbol or int(data["u"]) <= last_id:
            continue
        for side in ("b", "a"):
            for price, qty in data[side]:
                if Decimal(qty) == 0:
                    book[side].pop(price, None)
                else:
                    book[side][price] = qty
        last_id = int(data["u"])
    bids = sorted(book["b"].items(), key=lambda level: Decimal(level[0]), reverse=True)[:limit]
    asks = sorted(book["a"].items(), key=lambda level: Decimal(level[0]))[:limit]
    return orjson.dumps({"lastUpdateId": last_id, "bids": bids, "asks": asks}).decode()
