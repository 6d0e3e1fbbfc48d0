"""The binary stream protocol, server side: book events, heartbeats, trades and errors to bytes.

Byte layouts are in docs/binary-protocol.md. Everything is little-endian; prices and sizes go out as the
integer units they are held in, with the book's decimal places, so nothing is ever rounded. This runs
once per book event per (format, depth) stream: about 5 µs for a 10-level delta.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .book import Level
from .events import DELTA, SNAPSHOT, STALE, BookEvent

PROTOCOL_VERSION = 1

# Message types: the second byte of every frame.
TYPE_SNAPSHOT = 1
TYPE_DELTA = 2
TYPE_HEARTBEAT = 3
TYPE_TRADE = 4
TYPE_ERROR = 5
TYPE_STALE = 6

# Snapshot reasons (docs/streaming.md); a delta carries 0.
REASON_CODES = {"": 0, "subscribe": 1, "resync": 2, "history": 3, "reset": 4}
AGGRESSOR_CODES = {"buy": 1, "sell": 2}

CONSOLIDATED_VENUE_ID = 0
NO_TIMESTAMP = -(2**63)  # i64 minimum: "the venue gave no event time"
MAX_LEVELS_PER_SIDE = 0xFFFF
MAX_FIELD_BYTES = 8  # every level value is an i64

_BOOK_HEADER = struct.Struct("<BBIHQbbBqqqHH")
BOOK_HEADER_SIZE = _BOOK_HEADER.size
_HEARTBEAT = struct.Struct("<BBIHQq")
_STALE = struct.Struct("<BBIHQqH")
_TRADE = struct.Struct("<BBIHbbBqqqqH")
_ERROR = struct.Struct("<BBIH")
_LENGTH = struct.Struct("<H")


def encode_book(
    kind: str,
    instrument_id: int,
    venue_id: int,
    seq: int,
    price_exp: int,
    size_exp: int,
    exchange_ts_ns: int | None,
    receive_ts_ns: int,
    publish_ts_ns: int,
    bids: Sequence[Level],
    asks: Sequence[Level],
    reason: str = "",
) -> bytes:
    """A snapshot or a delta. A snapshot needs `reason` (subscribe, resync, history, reset); a delta carries
    none and ignores it, so a caller may pass one reason for a whole run of events.

    `bids` and `asks` are (price units, size units) at `price_exp` / `size_exp` decimals; size 0 removes.
    """
    if kind == DELTA:
        message_type = TYPE_DELTA
        reason = ""
    elif kind == SNAPSHOT:
        message_type = TYPE_SNAPSHOT
        if not reason or reason not in REASON_CODES:
            raise ValueError(f"a snapshot needs a reason (subscribe, resync, history, reset), got {reason!r}")
    else:
        raise ValueError(f"not a book message kind: {kind!r}")
    bid_count, ask_count = len(bids), len(asks)
    if bid_count > MAX_LEVELS_PER_SIDE or ask_count > MAX_LEVELS_PER_SIDE:
        raise ValueError(f"at most {MAX_LEVELS_PER_SIDE} levels per side in one message")
    out = bytearray(
        _BOOK_HEADER.pack(
            PROTOCOL_VERSION,
            message_type,
            instrument_id,
            venue_id,
            seq,
            price_exp,
            size_exp,
            REASON_CODES[reason],
            NO_TIMESTAMP if exchange_ts_ns is None else exchange_ts_ns,
            receive_ts_ns,
            publish_ts_ns,
            bid_count,
            ask_count,
        )
    )
    _pack_levels(bids, out)
    _pack_levels(asks, out)
    return bytes(out)


def _pack_levels(levels: Sequence[Level], out: bytearray) -> None:
    """Each level: a byte of field lengths (price high nibble, size low), then the price's difference
    from the previous level of the side and the size, as signed little-endian integers of those lengths.
    Small numbers take few bytes: a 10-level BTC delta is ~30% of its JSON, where fixed i64 pairs are
    ~52% (docs/binary-protocol.md)."""
    previous = 0
    for price, size in levels:
        step = price - previous
        previous = price
        # bit_length + 1 sign bit, rounded up to bytes; zero takes no bytes at all.
        price_len = (step.bit_length() + 8) >> 3 if step else 0
        size_len = (size.bit_length() + 8) >> 3 if size else 0
        if price_len > MAX_FIELD_BYTES or size_len > MAX_FIELD_BYTES:
            raise ValueError(f"level ({price}, {size}) does not fit the i64 fields of the protocol")
        out.append((price_len << 4) | size_len)
        out += step.to_bytes(price_len, "little", signed=True)
        out += size.to_bytes(size_len, "little", signed=True)


def encode_heartbeat(instrument_id: int, venue_id: int, seq: int, ts_ns: int) -> bytes:
    """The book's last sequence at `ts_ns`: a client behind it has missed something."""
    return _HEARTBEAT.pack(PROTOCOL_VERSION, TYPE_HEARTBEAT, instrument_id, venue_id, seq, ts_ns)


def encode_stale(instrument_id: int, venue_id: int, seq: int, ts_ns: int, reason: str) -> bytes:
    """The book at `seq` can no longer be trusted until the next snapshot."""
    text = _utf8(reason)
    return _STALE.pack(PROTOCOL_VERSION, TYPE_STALE, instrument_id, venue_id, seq, ts_ns, len(text)) + text


def encode_trade(
    instrument_id: int,
    venue_id: int,
    trade_id: str,
    price: int,
    size: int,
    aggressor: str,
    exchange_ts_ns: int | None,
    receive_ts_ns: int,
    price_exp: int,
    size_exp: int,
) -> bytes:
    """One trade; `aggressor` is "buy" (the buyer took liquidity) or "sell"."""
    if aggressor not in AGGRESSOR_CODES:
        raise ValueError(f"aggressor must be 'buy' or 'sell', got {aggressor!r}")
    text = _utf8(trade_id)
    head = _TRADE.pack(
        PROTOCOL_VERSION,
        TYPE_TRADE,
        instrument_id,
        venue_id,
        price_exp,
        size_exp,
        AGGRESSOR_CODES[aggressor],
        price,
        size,
        NO_TIMESTAMP if exchange_ts_ns is None else exchange_ts_ns,
        receive_ts_ns,
        len(text),
    )
    return head + text


def encode_error(request_id: int | None, code: str, message: str) -> bytes:
    """An error answering the client message `request_id` (None or 0: not an answer to one)."""
    code_bytes, message_bytes = _utf8(code), _utf8(message)
    return b"".join(
        (
            _ERROR.pack(PROTOCOL_VERSION, TYPE_ERROR, request_id or 0, len(code_bytes)),
            code_bytes,
            _LENGTH.pack(len(message_bytes)),
            message_bytes,
        )
    )


def encode_event(event: BookEvent, instrument_id: int, venue_id: int, *, reason: str = "") -> bytes:
    """A published book event as a frame. A snapshot takes the stream's `reason`, else "reset" (a snapshot
    on the bus is a connector or platform reset); a delta takes none."""
    if event.kind == STALE:
        return encode_stale(instrument_id, venue_id, event.seq, event.publish_ts_ns, event.reason)
    if event.kind == SNAPSHOT:
        reason = reason or "reset"
    return encode_book(
        event.kind,
        instrument_id,
        venue_id,
        event.seq,
        event.price_exp,
        event.size_exp,
        event.exchange_ts_ns,
        event.receive_ts_ns,
        event.publish_ts_ns,
        event.bids,
        event.asks,
        reason=reason,
    )


def _utf8(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0xFFFF:
        # A reason or message this long is a bug upstream; cut it rather than fail the frame.
        data = data[:0xFFFF].decode(errors="ignore").encode()
    return data
