"""Snapshots as a venue would answer them now (a Binance REST depth, an OKX or Kraken resubscription),
rebuilt from a recording.

A recording holds the snapshots fetched while recording, not the ones a connector asks for after a
resync. The venue's book at any point of the replay is the recorded snapshot plus every recorded diff of
that symbol served since (a frame that a fault dropped still happened at the venue), so the replay venue
answers a second depth request with that book and its last update id, as Binance would.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from .book import ASK, BID, OrderBook
from .checksum import okx_checksum
from .recording import Frame


def live_binance_depth(snapshot_body: str, frames: Sequence[Frame], upto_origin: int, symbol: str, limit: int) -> str:
    snapshot = orjson.loads(snapshot_body)
    last_id = int(snapshot["lastUpdateId"])
    book = {"b": dict(snapshot["bids"]), "a": dict(snapshot["asks"])}
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


_EXP = 18  # rebuild at a finer exponent than any venue writes; the text is what is sent back


def live_okx_snapshot(recorded: Sequence[Frame], served: Sequence[Frame], upto_origin: int, inst_id: str) -> str | None:
    """An OKX `books` snapshot of `inst_id` as the venue would send it on a resubscription now.

    Content from the recorded frames up to `upto_origin` (what happened at the venue); `seqId` from the
    last frame of that instrument actually served (so the following updates chain onto it).
    """
    book = OrderBook(_EXP, _EXP)
    ts = "0"
    seen = False
    for frame in recorded[: upto_origin + 1]:
        data = _okx_books(frame.text, inst_id)
        if data is None:
            continue
        action, item = data
        if action == "snapshot":
            book.clear()
        seen = True
        ts = str(item.get("ts", ts))
        for side, key in ((BID, "bids"), (ASK, "asks")):
            for level in item.get(key, []):
                book.apply(side, level[0], level[1])
    if not seen:
        return None
    bids, asks = book.top_text(BID, 400), book.top_text(ASK, 400)
    snapshot: dict[str, Any] = {
        "asks": [[p, q, "0", "1"] for p, q in asks],
        "bids": [[p, q, "0", "1"] for p, q in bids],
        "ts": ts,
        "checksum": okx_checksum(bids, asks),
    }
    last_seq = _last_okx_seq(served, inst_id)
    if last_seq is not None:
        snapshot.update(prevSeqId=-1, seqId=last_seq, checksum=0)
    message = {"arg": {"channel": "books", "instId": inst_id}, "action": "snapshot", "data": [snapshot]}
    return orjson.dumps(message).decode()


def _okx_books(text: str, inst_id: str) -> tuple[str, dict[str, Any]] | None:
    if '"books"' not in text or inst_id not in text:
        return None
    message = orjson.loads(text)
    arg = message.get("arg", {}) if isinstance(message, dict) else {}
    if arg.get("channel") != "books" or arg.get("instId") != inst_id or not message.get("data"):
        return None
    return str(message.get("action", "update")), message["data"][0]


def _last_okx_seq(served: Sequence[Frame], inst_id: str) -> int | None:
    for frame in reversed(served):
        data = _okx_books(frame.text, inst_id)
        if data is not None and "seqId" in data[1]:
            return int(data[1]["seqId"])
    return None


def live_kraken_v1_snapshot(recorded: Sequence[Frame], upto_origin: int, pair: str, depth: int) -> str | None:
    """A Kraken v1 `book` snapshot of `pair`, as the venue would send it on a resubscription now."""
    book = OrderBook(_EXP, _EXP)
    channel_id: Any = None
    channel_name = f"book-{depth}"
    for frame in recorded[: upto_origin + 1]:
        if pair not in frame.text or '"book-' not in frame.text:
            continue
        message = orjson.loads(frame.text)
        if not isinstance(message, list) or message[-1] != pair or not str(message[-2]).startswith("book"):
            continue
        channel_id, channel_name = message[0], message[-2]
        for part in message[1:-2]:
            if "as" in part or "bs" in part:
                book.clear()
            for key, side in (("as", ASK), ("bs", BID), ("a", ASK), ("b", BID)):
                for level in part.get(key, []):
                    book.apply(side, level[0], level[1])
        book.truncate(BID, depth)
        book.truncate(ASK, depth)
    if channel_id is None:
        return None
    levels = {
        "as": [[p, q, "0.0"] for p, q in book.top_text(ASK, depth)],
        "bs": [[p, q, "0.0"] for p, q in book.top_text(BID, depth)],
    }
    return orjson.dumps([channel_id, levels, channel_name, pair]).decode()
