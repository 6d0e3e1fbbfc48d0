"""The binary protocol: server encoder → the Python client's decoder, byte layout, and size against JSON."""

from __future__ import annotations

import json
import statistics
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.orderbook.domain import binary
from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, BookEvent
from apps.orderbook.domain.fixedpoint import from_units, to_units
from apps.orderbook.domain.render import event_json
from conftest import recording
from hftclient import (
    BookMessage,
    DecodeError,
    ErrorMessage,
    Heartbeat,
    Stale,
    Trade,
    Unknown,
    decode_binary,
    parse_json,
    units_to_decimal,
)

EXCHANGE_TS, RECEIVE_TS, PUBLISH_TS = 1732400000223000000, 1732400000223900000, 1732400000224100000
I64 = st.integers(min_value=0, max_value=2**63 - 1)

# The worked example of docs/binary-protocol.md.
DOC_DELTA_HEX = (
    "01020100000000 00d3040000000000 00020800c0b52d1e 9fb80a1860713b1e 9fb80a18a07e3e1e 9fb80a1802000100"
    " 3050b96614c24078 7d013451b966000e 2707"
)


def btc(levels: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """BTC-USDT levels at its 8 and 8 decimals."""
    return [(to_units(price, 8), to_units(size, 8)) for price, size in levels]


# One update of the OKX BTC-USDT recording (2022-05-13), first five levels a side.
OKX_BIDS = btc(
    [("30237.2", "0"), ("30236.1", "0.05452"), ("30235.9", "0.1016"), ("30231.6", "0.07189062"), ("30228.9", "0")]
)
OKX_ASKS = btc(
    [("30243.5", "1.2112"), ("30243.6", "0.059"), ("30246.6", "0.16"), ("30247.5", "0"), ("30249.3", "0.06523858")]
)
# Hand-made, at 2024 prices: sizes of a few lots, two levels removed.
HAND_BIDS = btc(
    [("67321.12", "0.01234"), ("67321.11", "0"), ("67320.95", "0.5"), ("67320.4", "1.20511"), ("67319.87", "0.00018")]
)
HAND_ASKS = btc(
    [("67321.13", "0.3051"), ("67321.2", "0"), ("67321.58", "2.04"), ("67322.01", "0.00742"), ("67323.5", "0.15")]
)


def delta_event(bids: list[tuple[int, int]], asks: list[tuple[int, int]], seq: int = 1235, exp: int = 8) -> BookEvent:
    return BookEvent(
        "consolidated:BTC-USDT", seq, DELTA, tuple(bids), tuple(asks), exp, exp, EXCHANGE_TS, RECEIVE_TS, PUBLISH_TS
    )


def stream_json(event: BookEvent) -> bytes:
    """The JSON frame of docs/streaming.md for the event, compact as the server writes it."""
    return orjson.dumps({"type": event.kind, "pair": "BTC-USDT", "venue": "consolidated", **event_json(event)})


def texts(levels: tuple[tuple[Decimal, Decimal], ...], price_exp: int, size_exp: int) -> list[tuple[str, str]]:
    """Decoded Decimal levels back to the server's canonical decimal strings."""
    return [
        (from_units(to_units(str(p), price_exp), price_exp), from_units(to_units(str(q), size_exp), size_exp))
        for p, q in levels
    ]


def test_worked_delta_example_of_the_document_is_what_the_encoder_writes() -> None:
    frame = binary.encode_book(
        DELTA,
        1,
        0,
        1235,
        2,
        8,
        EXCHANGE_TS,
        RECEIVE_TS,
        PUBLISH_TS,
        [(6732112, 0), (6732050, 25000000)],
        [(6732113, 120000000)],
    )
    assert frame.hex() == DOC_DELTA_HEX.replace(" ", "")
    message = decode_binary(frame)
    assert isinstance(message, BookMessage)
    assert message.bids == ((Decimal("67321.12"), Decimal(0)), (Decimal("67320.50"), Decimal("0.25")))
    assert message.asks == ((Decimal("67321.13"), Decimal("1.2")),)
    assert (message.sequence, message.type, message.reason) == (1235, "delta", "")
    assert (message.source.instrument_id, message.source.venue_id) == (1, 0)
    assert (message.exchange_timestamp, message.receive_timestamp, message.timestamp) == (
        EXCHANGE_TS,
        RECEIVE_TS,
        PUBLISH_TS,
    )


@pytest.mark.parametrize("reason", ["subscribe", "resync", "history", "reset"])
def test_snapshot_round_trips_with_its_reason_and_without_exchange_time(reason: str) -> None:
    frame = binary.encode_book(
        SNAPSHOT, 7, 3, 2**64 - 1, 8, 8, None, RECEIVE_TS, PUBLISH_TS, OKX_BIDS, OKX_ASKS, reason=reason
    )
    message = decode_binary(frame)
    assert isinstance(message, BookMessage)
    assert (message.type, message.reason, message.sequence) == ("snapshot", reason, 2**64 - 1)
    assert message.exchange_timestamp is None
    assert (message.source.instrument_id, message.source.venue_id) == (7, 3)
    assert texts(message.bids, 8, 8) == [
        ("30237.2", "0"),
        ("30236.1", "0.05452"),
        ("30235.9", "0.1016"),
        ("30231.6", "0.07189062"),
        ("30228.9", "0"),
    ]
    assert texts(message.asks, 8, 8) == [(from_units(p, 8), from_units(q, 8)) for p, q in OKX_ASKS]


def test_heartbeat_stale_trade_and_error_round_trip() -> None:
    heartbeat = decode_binary(binary.encode_heartbeat(1, 0, 1236, PUBLISH_TS))
    assert heartbeat == Heartbeat(1236, PUBLISH_TS, heartbeat.source)
    assert (heartbeat.source.instrument_id, heartbeat.source.venue_id) == (1, 0)

    stale = decode_binary(binary.encode_stale(1, 2, 1236, PUBLISH_TS, "checksum mismatch: ünïcode"))
    assert isinstance(stale, Stale)
    assert (stale.sequence, stale.reason, stale.source.venue_id) == (1236, "checksum mismatch: ünïcode", 2)

    trade = decode_binary(binary.encode_trade(1, 2, "T42", 6732112, 1500000, "sell", None, RECEIVE_TS, 2, 8))
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price, trade.size, trade.aggressor) == (
        "T42",
        Decimal("67321.12"),
        Decimal("0.015"),
        "sell",
    )
    assert (trade.exchange_timestamp, trade.receive_timestamp) == (None, RECEIVE_TS)

    error = decode_binary(binary.encode_error(4, "unknown_op", "Supported ops: subscribe, unsubscribe, resync, ping."))
    assert error == ErrorMessage(4, "unknown_op", "Supported ops: subscribe, unsubscribe, resync, ping.")
    assert decode_binary(binary.encode_error(None, "slow_consumer", "")) == ErrorMessage(None, "slow_consumer", "")


@pytest.mark.parametrize(("bids", "asks"), [(OKX_BIDS, OKX_ASKS), (HAND_BIDS, HAND_ASKS)], ids=["okx", "hand-made"])
def test_ten_level_btc_delta_is_at_most_half_the_bytes_of_its_json(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]]
) -> None:
    event = delta_event(bids, asks)
    frame, text = binary.encode_event(event, 1, 0), stream_json(event)
    assert len(frame) <= len(text) / 2, f"binary {len(frame)} bytes, JSON {len(text)}"


def test_ten_level_deltas_of_the_okx_btc_recording_are_under_a_third_of_their_json() -> None:
    """Every update of the real recording with five levels a side, cut to those ten levels."""
    ratios = []
    for line in recording("okx_2022-05-13.replay.jsonl").read_text().splitlines():
        record = json.loads(line)
        data = json.loads(record.get("data") or "{}") if record["t"] == "recv" else {}
        if data.get("arg") != {"channel": "books", "instId": "BTC-USDT"} or data.get("action") != "update":
            continue
        for update in data["data"]:
            if len(update["bids"]) >= 5 and len(update["asks"]) >= 5:
                event = delta_event(
                    btc([tuple(level[:2]) for level in update["bids"][:5]]),
                    btc([tuple(level[:2]) for level in update["asks"][:5]]),
                )
                ratios.append(len(binary.encode_event(event, 1, 0)) / len(stream_json(event)))
    assert len(ratios) > 50
    assert statistics.median(ratios) < 1 / 3
    assert max(ratios) <= 0.5


def test_binary_and_json_frames_carry_the_same_book() -> None:
    event = delta_event(HAND_BIDS, HAND_ASKS)
    from_binary = decode_binary(binary.encode_event(event, 1, 0))
    from_json = parse_json(stream_json(event))
    assert isinstance(from_binary, BookMessage)
    assert isinstance(from_json, BookMessage)
    assert from_binary.bids == from_json.bids
    assert from_binary.asks == from_json.asks
    assert (from_binary.sequence, from_binary.timestamp) == (from_json.sequence, from_json.timestamp)
    assert texts(from_binary.bids, 8, 8) == [(from_units(p, 8), from_units(q, 8)) for p, q in HAND_BIDS]


def test_encode_event_gives_bus_snapshots_the_reset_reason_and_stale_events_their_own_frame() -> None:
    snapshot = BookEvent("binance:BTC-USDT", 9, SNAPSHOT, ((1, 2),), (), 2, 8, None, RECEIVE_TS, PUBLISH_TS)
    message = decode_binary(binary.encode_event(snapshot, 1, 4))
    assert isinstance(message, BookMessage)
    assert message.reason == "reset"
    resynced = decode_binary(binary.encode_event(snapshot, 1, 4, reason="resync"))
    assert isinstance(resynced, BookMessage)
    assert resynced.reason == "resync"
    stale = BookEvent(
        "binance:BTC-USDT", 10, STALE, (), (), 2, 8, None, RECEIVE_TS, PUBLISH_TS, reason="gap: U=5 after u=3"
    )
    assert decode_binary(binary.encode_event(stale, 1, 4)) == Stale(
        10, PUBLISH_TS, "gap: U=5 after u=3", message.source
    )


@given(
    bids=st.lists(st.tuples(I64, I64), max_size=30),
    asks=st.lists(st.tuples(I64, I64), max_size=30),
    price_exp=st.integers(min_value=-4, max_value=18),
    size_exp=st.integers(min_value=-4, max_value=18),
    seq=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_any_i64_levels_at_any_decimals_decode_exactly(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], price_exp: int, size_exp: int, seq: int
) -> None:
    message = decode_binary(
        binary.encode_book(DELTA, 2**32 - 1, 2**16 - 1, seq, price_exp, size_exp, -1, 0, 2**63 - 1, bids, asks)
    )
    assert isinstance(message, BookMessage)
    exact = [(Decimal(p) / Decimal(10) ** price_exp, Decimal(q) / Decimal(10) ** size_exp) for p, q in bids + asks]
    assert list(message.bids + message.asks) == exact
    assert message.sequence == seq
    assert message.exchange_timestamp == -1


def test_units_to_decimal_is_exact_whatever_the_decimal_context() -> None:
    assert str(units_to_decimal(6732112, 2)) == "67321.12"
    assert units_to_decimal(2**63 - 1, 18) == Decimal("9.223372036854775807")
    assert units_to_decimal(5, -3) == 5000


@pytest.mark.parametrize(
    ("kind", "reason", "levels"),
    [
        (SNAPSHOT, "", []),
        (SNAPSHOT, "because", []),
        ("trade", "", []),
        (DELTA, "", [(2**63, 1)]),
        (DELTA, "", [(1, -(2**63) - 1)]),
        (DELTA, "", [(1, 1)] * (binary.MAX_LEVELS_PER_SIDE + 1)),
    ],
)
def test_encoder_refuses_what_the_protocol_cannot_say(kind: str, reason: str, levels: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, one type
        binary.encode_book(kind, 1, 0, 1, 2, 8, None, 0, 0, levels, [], reason=reason)


def test_a_delta_carries_no_reason_whatever_the_caller_passes() -> None:
    """Resumed streams pass the reason of their run ("reset") for deltas and snapshots alike."""
    message = decode_binary(binary.encode_book(DELTA, 1, 0, 5, 2, 8, None, 0, 0, [(1, 1)], [], reason="reset"))
    assert isinstance(message, BookMessage)
    assert (message.type, message.reason) == ("delta", "")


def test_encoder_refuses_an_unknown_aggressor() -> None:
    with pytest.raises(ValueError, match="aggressor"):
        binary.encode_trade(1, 0, "1", 1, 1, "taker", None, 0, 2, 8)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x01",
        b"\x02\x02" + bytes(60),  # another version
        binary.encode_heartbeat(1, 0, 1, 1)[:-1],
        binary.encode_book(DELTA, 1, 0, 1, 2, 8, None, 0, 0, [(10**12, 10**9)], [])[:-1],
        binary.encode_book(DELTA, 1, 0, 1, 2, 8, None, 0, 0, [(1, 1)], [])[:-3]
        + bytes([0x90])
        + bytes(9),  # 9-byte field
        binary.encode_stale(1, 0, 1, 1, "reason")[:-2],
        binary.encode_error(1, "code", "message")[:-1],
    ],
)
def test_decoder_rejects_truncated_and_malformed_frames(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_binary(frame)


def test_decoder_passes_on_a_message_type_it_does_not_know() -> None:
    message = decode_binary(b"\x01\x63whatever")
    assert isinstance(message, Unknown)
    assert message.type == "binary:99"
