"""Decoder of the binary stream protocol (docs/binary-protocol.md), version 1: frames to messages."""

from __future__ import annotations

import struct
from collections.abc import Callable

from .messages import (
    BookMessage,
    DecodeError,
    ErrorMessage,
    Heartbeat,
    Level,
    Message,
    Source,
    Stale,
    Trade,
    Unknown,
    units_to_decimal,
)

PROTOCOL_VERSION = 1
TYPE_SNAPSHOT = 1
TYPE_DELTA = 2
TYPE_HEARTBEAT = 3
TYPE_TRADE = 4
TYPE_ERROR = 5
TYPE_STALE = 6

NO_TIMESTAMP = -(2**63)
REASONS = {0: "", 1: "subscribe", 2: "resync", 3: "history", 4: "reset"}
AGGRESSORS = {0: "", 1: "buy", 2: "sell"}

_BOOK = struct.Struct("<BBIHQbbBqqqHH")
_HEARTBEAT = struct.Struct("<BBIHQq")
_STALE = struct.Struct("<BBIHQqH")
_TRADE = struct.Struct("<BBIHbbBqqqqH")
_ERROR = struct.Struct("<BBIH")
_LENGTH = struct.Struct("<H")
_MAX_FIELD_BYTES = 8


def decode_binary(frame: bytes | bytearray | memoryview) -> Message:
    """One binary frame. Bytes past the fields of version 1 are ignored (later fields are appended)."""
    if len(frame) < 2:
        raise DecodeError("frame shorter than its header")
    version, message_type = frame[0], frame[1]
    if version != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {version}, this client reads {PROTOCOL_VERSION}")
    decode = _DECODERS.get(message_type)
    if decode is None:
        return Unknown(f"binary:{message_type}", {"frame": bytes(frame)})
    try:
        return decode(frame)
    except (struct.error, UnicodeDecodeError) as exc:
        raise DecodeError(f"malformed message of type {message_type}: {exc}") from exc


def _timestamp(value: int) -> int | None:
    return None if value == NO_TIMESTAMP else value


def _book(frame: bytes | bytearray | memoryview) -> BookMessage:
    (
        _,
        kind,
        instrument,
        venue,
        seq,
        price_dp,
        size_dp,
        reason,
        exchange_ts,
        receive_ts,
        publish_ts,
        n_bids,
        n_asks,
    ) = _BOOK.unpack_from(frame)
    data = bytes(frame)
    bids, offset = _levels(data, _BOOK.size, n_bids, price_dp, size_dp)
    asks, _ = _levels(data, offset, n_asks, price_dp, size_dp)
    return BookMessage(
        type="snapshot" if kind == TYPE_SNAPSHOT else "delta",
        sequence=seq,
        bids=bids,
        asks=asks,
        exchange_timestamp=_timestamp(exchange_ts),
        receive_timestamp=receive_ts,
        timestamp=publish_ts,
        reason=REASONS.get(reason, f"reason:{reason}"),
        source=Source(instrument_id=instrument, venue_id=venue),
    )


def _levels(data: bytes, offset: int, count: int, price_dp: int, size_dp: int) -> tuple[tuple[Level, ...], int]:
    """`count` levels from `offset`: a byte of field lengths (price high nibble, size low), the price as a
    step from the previous level's, the size; both signed little-endian. Returns them and the next offset."""
    levels: list[Level] = []
    price = 0
    for _ in range(count):
        if offset >= len(data):
            raise DecodeError(f"frame of {len(data)} bytes ends inside its levels")
        lengths = data[offset]
        price_len, size_len = lengths >> 4, lengths & 0x0F
        end = offset + 1 + price_len + size_len
        if price_len > _MAX_FIELD_BYTES or size_len > _MAX_FIELD_BYTES or end > len(data):
            raise DecodeError(f"bad level at byte {offset}")
        price += int.from_bytes(data[offset + 1 : offset + 1 + price_len], "little", signed=True)
        size = int.from_bytes(data[offset + 1 + price_len : end], "little", signed=True)
        levels.append((units_to_decimal(price, price_dp), units_to_decimal(size, size_dp)))
        offset = end
    return tuple(levels), offset


def _heartbeat(frame: bytes | bytearray | memoryview) -> Heartbeat:
    _, _, instrument, venue, seq, ts = _HEARTBEAT.unpack_from(frame)
    return Heartbeat(seq, ts, Source(instrument_id=instrument, venue_id=venue))


def _text(frame: bytes | bytearray | memoryview, offset: int, length: int) -> str:
    if len(frame) < offset + length:
        raise DecodeError(f"frame of {len(frame)} bytes is too short for a string of {length} at {offset}")
    return bytes(frame[offset : offset + length]).decode()


def _stale(frame: bytes | bytearray | memoryview) -> Stale:
    _, _, instrument, venue, seq, ts, length = _STALE.unpack_from(frame)
    return Stale(seq, ts, _text(frame, _STALE.size, length), Source(instrument_id=instrument, venue_id=venue))


def _trade(frame: bytes | bytearray | memoryview) -> Trade:
    (_, _, instrument, venue, price_dp, size_dp, aggressor, price, size, exchange_ts, receive_ts, length) = (
        _TRADE.unpack_from(frame)
    )
    return Trade(
        trade_id=_text(frame, _TRADE.size, length),
        price=units_to_decimal(price, price_dp),
        size=units_to_decimal(size, size_dp),
        aggressor=AGGRESSORS.get(aggressor, ""),
        exchange_timestamp=_timestamp(exchange_ts),
        receive_timestamp=receive_ts,
        source=Source(instrument_id=instrument, venue_id=venue),
    )


def _error(frame: bytes | bytearray | memoryview) -> ErrorMessage:
    _, _, request_id, code_length = _ERROR.unpack_from(frame)
    code = _text(frame, _ERROR.size, code_length)
    offset = _ERROR.size + code_length
    (message_length,) = _LENGTH.unpack_from(frame, offset)
    return ErrorMessage(request_id or None, code, _text(frame, offset + _LENGTH.size, message_length))


_DECODERS: dict[int, Callable[[bytes | bytearray | memoryview], Message]] = {
    TYPE_SNAPSHOT: _book,
    TYPE_DELTA: _book,
    TYPE_HEARTBEAT: _heartbeat,
    TYPE_TRADE: _trade,
    TYPE_ERROR: _error,
    TYPE_STALE: _stale,
}
