"""OKX v5 protocol: the real 2022 recording, seqId continuity and its faults, REST bootstrap, keep-alive."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.checksum import okx_checksum
from apps.orderbook.domain.events import BookChange, BookStale, InstrumentSpec, Trade
from apps.orderbook.domain.fixedpoint import decimals_of, to_units
from apps.orderbook.domain.protocol import Fetch, Output, Reconnect, Send, VenueProtocol, Verified
from apps.orderbook.domain.venues.okx import (
    MAX_RESYNCS_IN_A_ROW,
    MAX_SNAPSHOT_ATTEMPTS,
    PING_AFTER_NS,
    PONG_TIMEOUT_NS,
    SYNC_TIMEOUT_NS,
    OKXProtocol,
)
from apps.orderbook.tests.domain.clients import apply_to_client

VENUES = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "venues"
RECORDING = VENUES / "okx_2022-05-13.replay.jsonl"
# The instruments' real tick and lot sizes: BTC-USDT 0.1 and 0.00000001; the future and the swap trade whole
# contracts at ticks of 0.1 and 0.001.
BTC_USDT = InstrumentSpec("BTC-USDT", "BTC-USDT", price_exp=1, size_exp=8)
BTC_FUTURE = InstrumentSpec("BTC-USD-220527", "BTC-USD-220527", price_exp=1, size_exp=0)
UNI_SWAP = InstrumentSpec("UNI-USD-SWAP", "UNI-USD-SWAP", price_exp=3, size_exp=0)
SPECS = [BTC_USDT, BTC_FUTURE, UNI_SWAP]
SECOND = 10**9
T0 = 1_652_459_225_000_000_000
Frame = tuple[int, str]  # (receive time ns, text)


def of(outputs: list[Output], kind: type) -> list[Any]:
    return [o for o in outputs if isinstance(o, kind)]


def checksums(outputs: list[Output]) -> list[Verified]:
    return [o for o in of(outputs, Verified) if o.check == "checksum"]


def feed(protocol: OKXProtocol, frames: list[Frame]) -> list[Output]:
    outputs: list[Output] = []
    for now_ns, text in frames:
        outputs += protocol.on_message(text, now_ns)
    return outputs


def replay(frames: list[Frame], **options: Any) -> tuple[OKXProtocol, list[Output]]:
    protocol = OKXProtocol(SPECS, **options)
    protocol.on_open(frames[0][0])
    return protocol, feed(protocol, frames)


def books_of(text: str) -> tuple[str, str] | None:
    """(instId, action) of a `books` push, else None."""
    message = json.loads(text)
    if message.get("arg", {}).get("channel") != "books" or "action" not in message:
        return None
    return message["arg"]["instId"], message["action"]


def indexes(frames: list[Frame], inst_id: str, action: str) -> list[int]:
    return [i for i, (_, text) in enumerate(frames) if books_of(text) == (inst_id, action)]


def whole_book(protocol: OKXProtocol, inst_id: str) -> tuple[Any, ...]:
    book = protocol.book(inst_id)
    return book.top(BID), book.top(ASK), book.top_text(BID, 10_000), book.top_text(ASK, 10_000)


def ops(outputs: list[Output]) -> list[dict[str, Any]]:
    return [orjson.loads(s.text) for s in of(outputs, Send)]


def books_op(op: str, inst_id: str = "BTC-USDT") -> dict[str, Any]:
    return {"op": op, "args": [{"channel": "books", "instId": inst_id}]}


# --- the real recording -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording() -> list[Frame]:
    """Every `recv` frame of OKX.ws.1, in order, with its receive time."""
    if not RECORDING.exists():
        pytest.skip(f"recording missing: {RECORDING}")
    records = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    return [(round(r["ts"] * 1e6) * 1000, r["data"]) for r in records if r["t"] == "recv" and r["conn"] == "OKX.ws.1"]


def add_seq_ids(frames: list[Frame], *, keepalive_after: int = 0, reset_after: int = 0) -> list[Frame]:
    """OKX since 2023: a running seqId per instrument and `checksum: 0`; optionally, after the n-th update of
    each instrument, a keep-alive (prevSeqId == seqId, empty sides) or a sequence reset (seqId < prevSeqId)."""
    last: dict[str, int] = {}
    updates: Counter[str] = Counter()
    out: list[Frame] = []
    for now_ns, text in frames:
        tag = books_of(text)
        if tag is None:
            out.append((now_ns, text))
            continue
        inst_id, action = tag
        message = json.loads(text)
        item = message["data"][0]
        item["checksum"] = 0
        if action == "snapshot":
            item["prevSeqId"], item["seqId"] = -1, 1_000
        else:
            updates[inst_id] += 1
            item["prevSeqId"] = last[inst_id]
            item["seqId"] = 7 if updates[inst_id] == reset_after else last[inst_id] + 3
        last[inst_id] = item["seqId"]
        out.append((now_ns, json.dumps(message)))
        if action == "update" and updates[inst_id] == keepalive_after:
            seq = item["seqId"]
            keepalive = {"asks": [], "bids": [], "ts": item["ts"], "checksum": 0, "prevSeqId": seq, "seqId": seq}
            out.append((now_ns, json.dumps({"arg": message["arg"], "action": "update", "data": [keepalive]})))
    return out


def test_recording_levels_and_trades_fit_the_instrument_exponents(recording: list[Frame]) -> None:
    price_decimals: Counter[str] = Counter()
    size_decimals: Counter[str] = Counter()
    for _, text in recording:
        message = json.loads(text)
        channel, inst_id = message.get("arg", {}).get("channel"), message.get("arg", {}).get("instId")
        for item in message.get("data", []):
            if channel == "books":
                pairs = [(level[0], level[1]) for key in ("bids", "asks") for level in item[key]]
            elif channel == "trades":
                pairs = [(item["px"], item["sz"])]
            else:
                continue
            for price, size in pairs:
                price_decimals[inst_id] = max(price_decimals[inst_id], decimals_of(price))
                size_decimals[inst_id] = max(size_decimals[inst_id], decimals_of(size))
    assert dict(price_decimals) == {spec.venue_symbol: spec.price_exp for spec in SPECS}
    assert dict(size_decimals) == {spec.venue_symbol: spec.size_exp for spec in SPECS}


def test_recording_every_checksum_verifies_and_no_book_goes_stale(recording: list[Frame]) -> None:
    _, outputs = replay(recording)

    checks = checksums(outputs)
    assert Counter(c.is_ok for c in checks) == {True: 290}
    assert Counter(c.symbol for c in checks) == {"BTC-USDT": 98, "BTC-USD-220527": 99, "UNI-USD-SWAP": 93}
    assert of(outputs, BookStale) == []
    assert of(outputs, Send) == []  # no resubscribe was needed
    assert of(outputs, Reconnect) == []
    resets = [c for c in of(outputs, BookChange) if c.is_reset]
    assert sorted(c.symbol for c in resets) == sorted(spec.symbol for spec in SPECS)
    btc = next(c for c in resets if c.symbol == "BTC-USDT")
    assert (len(btc.bids), len(btc.asks)) == (400, 400)
    assert all(c.venue_seq is None for c in of(outputs, BookChange))  # the recording predates seqId


def test_recording_clients_fed_our_events_equal_our_books(recording: list[Frame]) -> None:
    protocol, outputs = replay(recording)
    clients: dict[str, dict[str, dict[int, int]]] = {spec.symbol: {BID: {}, ASK: {}} for spec in SPECS}
    for change in of(outputs, BookChange):
        apply_to_client(clients[change.symbol], change)
        assert change.is_reset or change.bids or change.asks  # never an empty delta
    for spec in SPECS:
        book = protocol.book(spec.venue_symbol)
        assert sorted(clients[spec.symbol][BID].items()) == sorted(book.top(BID))
        assert sorted(clients[spec.symbol][ASK].items()) == sorted(book.top(ASK))
        assert not book.is_crossed()


def test_recording_trades_carry_the_takers_side(recording: list[Frame]) -> None:
    sent = [
        item
        for _, text in recording
        if (message := json.loads(text)).get("arg", {}).get("channel") == "trades" and "data" in message
        for item in message["data"]
        if item["instId"] == "BTC-USDT"
    ]
    _, outputs = replay(recording)

    trades = [t for t in of(outputs, Trade) if t.symbol == "BTC-USDT"]
    assert len(trades) == len(sent) == 69
    assert [(t.trade_id, t.aggressor) for t in trades] == [(s["tradeId"], s["side"]) for s in sent]
    assert [(t.price, t.qty) for t in trades] == [(to_units(s["px"], 1), to_units(s["sz"], 8)) for s in sent]
    assert Counter(t.aggressor for t in trades) == {"buy": 44, "sell": 25}
    assert all(t.exchange_ts_ns == int(s["ts"]) * 10**6 for t, s in zip(trades, sent, strict=True))
    assert len(of(outputs, Trade)) == 74  # with the future's 4 and the swap's 1


def test_duplicate_update_without_seq_ids_is_harmless_and_still_verifies(recording: list[Frame]) -> None:
    """Before seqId there is nothing to recognise a duplicate by; sizes are absolute, so applying it again is a
    no-op and its checksum still matches."""
    again = indexes(recording, "BTC-USDT", "update")[3]
    frames = [*recording[: again + 1], recording[again], *recording[again + 1 :]]

    _, outputs = replay(frames)

    assert Counter(c.is_ok for c in checksums(outputs)) == {True: 291}
    assert of(outputs, BookStale) == []


def first_update_inside_the_top_25(frames: list[Frame], inst_id: str) -> tuple[int, str, int]:
    """(frame index, "bids"/"asks", level index) of the first update that sets a level the checksum covers."""
    reference = OKXProtocol(SPECS)
    reference.on_open(T0)
    for index, (now_ns, text) in enumerate(frames):
        reference.on_message(text, now_ns)
        if books_of(text) != (inst_id, "update"):
            continue
        item = json.loads(text)["data"][0]
        for key, side in (("bids", BID), ("asks", ASK)):
            top = reference.book(inst_id).top_text(side, 25)
            for n, level in enumerate(item[key]):
                if level[1] != "0" and (level[0], level[1]) in top:
                    return index, key, n
    raise AssertionError("no update reaches the top 25")


def test_corrupted_level_fails_the_checksum_goes_stale_and_resubscribes(recording: list[Frame]) -> None:
    index, key, n = first_update_inside_the_top_25(recording, "BTC-USDT")
    now_ns, text = recording[index]
    message = json.loads(text)
    message["data"][0][key][n][1] = str(Decimal(message["data"][0][key][n][1]) + 1)

    protocol, before = replay(recording[:index])
    outputs = protocol.on_message(json.dumps(message), now_ns)

    assert of(before, BookStale) == []
    assert [type(o) for o in outputs] == [Verified, BookStale, Send, Send]
    assert outputs[0].check == "checksum"
    assert not outputs[0].is_ok
    assert outputs[1].symbol == "BTC-USDT"
    assert outputs[1].reason.startswith("checksum")
    assert ops(outputs) == [books_op("unsubscribe"), books_op("subscribe")]
    later = feed(protocol, [f for f in recording[index + 1 :] if books_of(f[1]) == ("BTC-USDT", "update")])
    assert later == []  # ignored until the new snapshot


def test_synthetic_seq_ids_keepalive_and_reset_are_all_accepted(recording: list[Frame]) -> None:
    frames = add_seq_ids(recording, keepalive_after=10, reset_after=20)
    assert sum('"prevSeqId": -1' in text for _, text in frames) == 3

    reference, expected = replay(recording)
    protocol, outputs = replay(frames)

    assert of(outputs, BookStale) == []
    assert of(outputs, Send) == []
    assert checksums(outputs) == []  # checksum 0 means absent
    strip = [(c.symbol, c.bids, c.asks, c.is_reset, c.receive_ts_ns) for c in of(outputs, BookChange)]
    assert strip == [(c.symbol, c.bids, c.asks, c.is_reset, c.receive_ts_ns) for c in of(expected, BookChange)]
    for spec in SPECS:
        assert whole_book(protocol, spec.venue_symbol) == whole_book(reference, spec.venue_symbol)
    btc = [c.venue_seq for c in of(outputs, BookChange) if c.symbol == "BTC-USDT"]
    assert btc[0] == 1_000
    assert 7 in btc  # after the reset
    assert btc[-1] == 7 + 3 * (97 - 20)


def test_gap_in_seq_id_marks_stale_and_resubscribes(recording: list[Frame]) -> None:
    frames = add_seq_ids(recording)
    updates = indexes(frames, "BTC-USDT", "update")
    dropped, next_update = updates[4], updates[5]
    protocol, before = replay(frames[:dropped])
    between = feed(protocol, frames[dropped + 1 : next_update])

    outputs = protocol.on_message(frames[next_update][1], frames[next_update][0])

    assert of(before + between, BookStale) == []
    assert outputs[0] == BookStale("okx", "BTC-USDT", "gap: prevSeqId=1015 after seqId=1012", frames[next_update][0])
    assert ops(outputs[1:]) == [books_op("unsubscribe"), books_op("subscribe")]
    rest = feed(protocol, frames[next_update + 1 :])
    assert [c for c in of(rest, BookChange) if c.symbol == "BTC-USDT"] == []
    assert {c.symbol for c in of(rest, BookChange)} == {"BTC-USD-220527", "UNI-USD-SWAP"}
    assert of(rest, BookStale) == []

    snapshot = frames[indexes(frames, "BTC-USDT", "snapshot")[0]]
    fresh = protocol.on_message(snapshot[1], snapshot[0])
    assert [(type(o), o.symbol, o.is_reset, o.venue_seq) for o in fresh] == [(BookChange, "BTC-USDT", True, 1_000)]


def test_duplicate_or_replayed_update_with_seq_ids_is_ignored(recording: list[Frame]) -> None:
    frames = add_seq_ids(recording)
    updates = indexes(frames, "BTC-USDT", "update")
    faulty = list(frames)
    faulty.insert(updates[8] + 1, frames[updates[2]])  # an old frame replayed
    faulty.insert(updates[3] + 1, frames[updates[3]])  # a duplicate, right after the original

    reference, expected = replay(frames)
    protocol, outputs = replay(faulty)

    assert of(outputs, BookStale) == []
    assert of(outputs, BookChange) == of(expected, BookChange)
    assert whole_book(protocol, "BTC-USDT") == whole_book(reference, "BTC-USDT")


# --- hand-written frames ------------------------------------------------------------------------------

BIDS = [("100", "1"), ("99.9", "2")]
ASKS = [("100.1", "1.5"), ("100.2", "2")]


def frame(
    action: str,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    *,
    prev: int | None = None,
    seq: int | None = None,
    checksum: int = 0,
    inst_id: str = "BTC-USDT",
) -> str:
    item: dict[str, Any] = {
        "asks": [[p, s, "0", "1"] for p, s in asks],
        "bids": [[p, s, "0", "1"] for p, s in bids],
        "ts": "1652459225464",
        "checksum": checksum,
    }
    if seq is not None:
        item |= {"prevSeqId": prev, "seqId": seq}
    return orjson.dumps({"arg": {"channel": "books", "instId": inst_id}, "action": action, "data": [item]}).decode()


def rest_body(bids: list[tuple[str, str]], asks: list[tuple[str, str]], seq: int | None) -> str:
    item: dict[str, Any] = {"asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids]}
    item["ts"] = "1652459225000"
    if seq is not None:
        item["seqId"] = seq
    return orjson.dumps({"code": "0", "msg": "", "data": [item]}).decode()


def live(seq: int | None = 10) -> OKXProtocol:
    protocol = OKXProtocol([BTC_USDT])
    protocol.on_open(T0)
    outputs = protocol.on_message(frame("snapshot", BIDS, ASKS, prev=-1, seq=seq), T0)
    assert [type(o) for o in outputs] == [BookChange]
    return protocol


def test_protocol_satisfies_the_contract_and_subscribes_books_and_trades() -> None:
    protocol: VenueProtocol = OKXProtocol(SPECS)

    outputs = protocol.on_open(T0)

    assert protocol.venue == "okx"
    assert protocol.ws_path() == "/ws/v5/public"
    assert ops(outputs) == [
        {
            "op": "subscribe",
            "args": [
                {"channel": channel, "instId": spec.venue_symbol} for spec in SPECS for channel in ("books", "trades")
            ],
        }
    ]
    ack = '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}'
    assert protocol.on_message(ack, T0) == []


def test_channel_is_configurable() -> None:
    protocol = OKXProtocol([BTC_USDT], venue="okx-tbt", channel="books-l2-tbt")
    assert ops(protocol.on_open(T0))[0]["args"][0] == {"channel": "books-l2-tbt", "instId": "BTC-USDT"}
    text = frame("snapshot", BIDS, ASKS, prev=-1, seq=3).replace('"books"', '"books-l2-tbt"')
    assert [(o.venue, o.is_reset) for o in protocol.on_message(text, T0)] == [("okx-tbt", True)]


def test_snapshot_is_a_reset_and_update_emits_only_the_net_changes() -> None:
    protocol = OKXProtocol([BTC_USDT])
    protocol.on_open(T0)
    checksum = okx_checksum(BIDS, ASKS)

    reset = protocol.on_message(frame("snapshot", BIDS, ASKS, prev=-1, seq=10, checksum=checksum), T0)

    assert reset == [
        Verified("BTC-USDT", "checksum", True),
        BookChange(
            "okx",
            "BTC-USDT",
            ((1000, 10**8), (999, 2 * 10**8)),
            ((1001, 15 * 10**7), (1002, 2 * 10**8)),
            True,
            1652459225464 * 10**6,
            T0,
            10,
        ),
    ]
    # 99.9 set twice, back to where it was; 100 unchanged; 99.8 added; 100.2 deleted; 100.9 deleted but absent.
    update = [("99.9", "5"), ("100", "1"), ("99.9", "2"), ("99.8", "3")], [("100.2", "0"), ("100.9", "0")]
    checksum = okx_checksum([("100", "1"), ("99.9", "2"), ("99.8", "3")], [("100.1", "1.5")])
    outputs = protocol.on_message(frame("update", *update, prev=10, seq=11, checksum=checksum), T0 + 1)
    assert outputs == [
        Verified("BTC-USDT", "checksum", True),
        BookChange("okx", "BTC-USDT", ((998, 3 * 10**8),), ((1002, 0),), False, 1652459225464 * 10**6, T0 + 1, 11),
    ]


def test_sequence_reset_is_applied_but_old_frames_are_ignored() -> None:
    protocol = live(seq=10)
    normal = frame("update", [("100", "4")], [], prev=10, seq=15)
    reset = frame("update", [("100", "5")], [], prev=15, seq=3)

    assert of(protocol.on_message(normal, T0 + 1), BookChange)[0].venue_seq == 15
    assert protocol.on_message(normal, T0 + 2) == []  # duplicate: prevSeqId <= seqId <= last
    assert protocol.on_message(frame("update", [], [], prev=15, seq=15), T0 + 3) == []  # keep-alive
    assert protocol.on_message(frame("update", [("100", "9")], [], prev=1, seq=12), T0 + 4) == []  # older replay
    assert [c.venue_seq for c in of(protocol.on_message(reset, T0 + 5), BookChange)] == [3]
    assert protocol.book("BTC-USDT").best_bid() == (1000, 5 * 10**8)
    after = protocol.on_message(frame("update", [("100", "6")], [], prev=3, seq=5), T0 + 6)
    assert [c.venue_seq for c in of(after, BookChange)] == [5]

    # The reset frame again cannot be placed (its prevSeqId is no longer the last seqId): the safe side.
    outputs = protocol.on_message(reset, T0 + 7)
    assert outputs[0] == BookStale("okx", "BTC-USDT", "gap: prevSeqId=15 after seqId=5", T0 + 7)
    assert ops(outputs) == [books_op("unsubscribe"), books_op("subscribe")]


def test_crossed_book_goes_stale_and_resubscribes() -> None:
    protocol = live()
    outputs = protocol.on_message(frame("update", [("100.1", "1")], [], prev=10, seq=11), T0 + 1)
    assert outputs[0] == BookStale("okx", "BTC-USDT", "crossed book", T0 + 1)
    assert ops(outputs) == [books_op("unsubscribe"), books_op("subscribe")]


def test_level_finer_than_the_instruments_precision_goes_stale_and_resubscribes() -> None:
    protocol = live()
    outputs = protocol.on_message(frame("update", [("99.95", "1")], [], prev=10, seq=11), T0 + 1)
    assert [type(o) for o in outputs] == [BookStale, Send, Send]
    assert "99.95" in outputs[0].reason
    assert protocol.on_message(frame("update", [("99.9", "1")], [], prev=11, seq=12), T0 + 2) == []


def test_update_without_seq_ids_relies_on_the_checksum() -> None:
    protocol = live(seq=None)
    good = okx_checksum([("100", "7"), ("99.9", "2")], ASKS)
    outputs = protocol.on_message(frame("update", [("100", "7")], [], checksum=good), T0 + 1)
    assert [type(o) for o in outputs] == [Verified, BookChange]
    assert outputs[1].venue_seq is None
    wrong = protocol.on_message(frame("update", [("100", "8")], [], checksum=good), T0 + 2)
    assert [type(o) for o in wrong] == [Verified, BookStale, Send, Send]


def test_repeated_resyncs_end_in_reconnect() -> None:
    protocol = OKXProtocol([BTC_USDT])
    protocol.on_open(T0)
    crossed = frame("snapshot", [("101", "1")], ASKS, prev=-1, seq=1)
    for attempt in range(MAX_RESYNCS_IN_A_ROW):
        assert ops(protocol.on_message(crossed, T0 + attempt)) == [books_op("unsubscribe"), books_op("subscribe")]
    assert of(protocol.on_message(crossed, T0 + 9), Reconnect) != []


UPDATE = '{"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update", "data": '
TRADES = '{"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": '
MALFORMED = [
    "",
    "{",
    "[]",
    "null",
    "42",
    '"pong"',
    "ping",
    '{"arg": 5}',
    '{"arg": {"channel": "books"}}',
    '{"arg": {"channel": "books", "instId": ["BTC-USDT"]}, "action": "update", "data": []}',
    UPDATE + "5}",
    UPDATE + "[]}",
    UPDATE + "[5]}",
    UPDATE + "[{}]}",
    '{"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "partial", "data": [{"asks": [], "bids": []}]}',
    UPDATE + '[{"asks": [["100.1"]], "bids": []}]}',
    UPDATE + '[{"asks": [[100.1, 1]], "bids": []}]}',
    UPDATE + '[{"asks": [["1e99999", "1"]], "bids": []}]}',
    UPDATE + '[{"asks": [["-1", "1"]], "bids": []}]}',
    UPDATE + '[{"asks": [["", "1"]], "bids": []}]}',
    UPDATE + '[{"asks": [], "bids": [], "checksum": "1"}]}',
    UPDATE + '[{"asks": [], "bids": [], "seqId": 11}]}',
    UPDATE + '[{"asks": [], "bids": [], "ts": "²", "seqId": 11, "prevSeqId": 10}]}',
    '{"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot", "data": [{"asks": "x", "bids": []}]}',
    TRADES + '[5, {"side": "buy"}, {"side": "up", "px": "1", "sz": "1"}]}',
    TRADES + '[{"side": "buy", "px": "1e99999", "sz": "1", "ts": "1"}]}',
    TRADES + '[{"side": "buy", "px": "1", "sz": "1", "ts": "x", "tradeId": "1"}]}',
    TRADES + "7}",
    '{"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": [{"last": "1"}]}',
    '{"event": "subscribe", "arg": 5}',
    "[" * 100_000,
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_frames_never_raise_and_never_publish(text: str) -> None:
    waiting = OKXProtocol([BTC_USDT])
    waiting.on_open(T0)
    before_snapshot = waiting.on_message(text, T0)
    assert [type(o) for o in before_snapshot] in ([], [Send, Send])  # a bad snapshot: subscribe again

    protocol = live()
    outputs = protocol.on_message(text, T0 + 1)
    assert not of(outputs, BookChange)
    assert not of(outputs, Trade)
    if outputs:
        assert [type(o) for o in outputs] == [BookStale, Send, Send]


# --- events and keep-alive --------------------------------------------------------------------------


def test_error_event_reconnects_with_its_message() -> None:
    protocol = live()
    error = '{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\"}","connId":"a4d3ae55"}'
    assert protocol.on_message(error, T0 + 1) == [Reconnect('OKX error 60012: Invalid request: {"op": "subscribe"}')]
    assert protocol.on_tick(T0 + PONG_TIMEOUT_NS * 9) == []  # one Reconnect, not one per tick
    assert protocol.on_close(T0 + 2) == [BookStale("okx", "BTC-USDT", "disconnected", T0 + 2)]


def test_service_upgrade_notice_reconnects() -> None:
    notice = '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade."}'
    outputs = live().on_message(notice, T0 + 1)
    assert outputs == [Reconnect("OKX notice 64008: The connection will soon be closed for a service upgrade.")]


def test_ping_after_25_s_of_silence_and_pong_is_not_json() -> None:
    protocol = live()
    assert protocol.on_tick(T0 + PING_AFTER_NS - 1) == []
    assert protocol.on_tick(T0 + PING_AFTER_NS) == [Send("ping")]
    assert protocol.on_tick(T0 + PING_AFTER_NS + SECOND) == []  # one ping at a time
    pong_ns = T0 + PING_AFTER_NS + 2 * SECOND
    assert protocol.on_message("pong", pong_ns) == []
    assert protocol.on_tick(pong_ns + PING_AFTER_NS - 1) == []
    assert protocol.on_tick(pong_ns + PING_AFTER_NS) == [Send("ping")]


def test_any_frame_counts_as_alive() -> None:
    protocol = live()
    assert protocol.on_tick(T0 + PING_AFTER_NS) == [Send("ping")]
    protocol.on_message(frame("update", [], [], prev=10, seq=10), T0 + PING_AFTER_NS + SECOND)  # keep-alive
    assert protocol.on_tick(T0 + PING_AFTER_NS + PONG_TIMEOUT_NS) == [Send("ping")]  # a new ping, no Reconnect


def test_no_pong_within_30_s_of_the_ping_reconnects() -> None:
    protocol = live()
    assert protocol.on_tick(T0 + PING_AFTER_NS) == [Send("ping")]
    assert protocol.on_tick(T0 + PING_AFTER_NS + PONG_TIMEOUT_NS - 1) == []
    assert protocol.on_tick(T0 + PING_AFTER_NS + PONG_TIMEOUT_NS) == [Reconnect("no pong within 30 s of a ping")]
    assert protocol.on_tick(T0 + PING_AFTER_NS + PONG_TIMEOUT_NS + SECOND) == []


def test_no_snapshot_after_a_resubscribe_reconnects() -> None:
    protocol = live()
    protocol.on_message(frame("update", [], [], prev=99, seq=100), T0 + SECOND)  # gap: resubscribed
    protocol.on_message("pong", T0 + SYNC_TIMEOUT_NS)
    assert protocol.on_tick(T0 + SECOND + SYNC_TIMEOUT_NS - 1) == []
    assert protocol.on_tick(T0 + SECOND + SYNC_TIMEOUT_NS) == [Reconnect("BTC-USDT: book not synchronised within 15 s")]


def test_close_stales_live_books_once_and_open_starts_over() -> None:
    protocol = live()
    assert protocol.on_close(T0 + 1) == [BookStale("okx", "BTC-USDT", "disconnected", T0 + 1)]
    assert protocol.on_close(T0 + 2) == []
    assert protocol.book("BTC-USDT").depth(BID) == 0
    assert protocol.on_message(frame("update", [("100", "3")], [], prev=10, seq=11), T0 + 3) == []
    assert len(ops(protocol.on_open(T0 + 4))) == 1


# --- REST bootstrap ---------------------------------------------------------------------------------

FETCH_PATH = "/api/v5/market/books?instId=BTC-USDT&sz=400"


def bootstrapping() -> OKXProtocol:
    protocol = OKXProtocol([BTC_USDT], use_ws_snapshot=False)
    outputs = protocol.on_open(T0)
    assert ops(outputs) == [
        {
            "op": "subscribe",
            "args": [{"channel": "books", "instId": "BTC-USDT"}, {"channel": "trades", "instId": "BTC-USDT"}],
        }
    ]
    assert of(outputs, Fetch) == [Fetch("BTC-USDT#1", FETCH_PATH)]
    return protocol


def test_rest_bootstrap_buffers_updates_and_applies_those_after_the_snapshot() -> None:
    protocol = bootstrapping()
    buffered = [
        frame("update", [("100", "9")], [], prev=100, seq=103),  # already in the snapshot
        frame("update", [("99.8", "2")], [], prev=103, seq=107),
        frame("update", [], [], prev=107, seq=107),  # keep-alive
        frame("update", [], [("100.1", "0")], prev=107, seq=110),
    ]
    assert feed(protocol, [(T0 + i, text) for i, text in enumerate(buffered)]) == []

    outputs = protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=103), T0 + 10)

    assert outputs == [
        BookChange(
            "okx",
            "BTC-USDT",
            ((1000, 10**8), (999, 2 * 10**8), (998, 2 * 10**8)),
            ((1002, 2 * 10**8),),
            True,
            1652459225464 * 10**6,
            T0 + 10,
            110,
        ),
    ]
    live_update = protocol.on_message(frame("update", [("100", "3")], [], prev=110, seq=111), T0 + 11)
    assert [(c.bids, c.venue_seq) for c in of(live_update, BookChange)] == [(((1000, 3 * 10**8),), 111)]
    assert protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=200), T0 + 12) == []  # late duplicate


def test_rest_snapshot_older_than_the_buffer_is_fetched_again() -> None:
    protocol = bootstrapping()
    protocol.on_message(frame("update", [("99.8", "2")], [], prev=100, seq=103), T0 + 1)

    assert protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=90), T0 + 2) == [
        Fetch("BTC-USDT#2", FETCH_PATH)
    ]
    assert protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=100), T0 + 3) == []  # superseded
    outputs = protocol.on_rest("BTC-USDT#2", 200, rest_body(BIDS, ASKS, seq=100), T0 + 4)
    assert [(c.is_reset, c.venue_seq, len(c.bids)) for c in of(outputs, BookChange)] == [(True, 103, 3)]


def test_rest_gap_inside_the_buffer_is_fetched_again() -> None:
    protocol = bootstrapping()
    protocol.on_message(frame("update", [("99.8", "2")], [], prev=100, seq=103), T0 + 1)
    protocol.on_message(frame("update", [("99.7", "2")], [], prev=105, seq=108), T0 + 2)  # 103..105 lost

    assert protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=100), T0 + 3) == [
        Fetch("BTC-USDT#2", FETCH_PATH)
    ]
    outputs = protocol.on_rest("BTC-USDT#2", 200, rest_body(BIDS, ASKS, seq=105), T0 + 4)
    assert [(c.is_reset, c.venue_seq) for c in of(outputs, BookChange)] == [(True, 108)]


def test_rest_update_straddling_the_snapshot_links_to_it() -> None:
    """REST refreshes every 50 ms, `books` pushes every 100 ms: an update spanning 103..107 carries the final size
    of every level changed in that span, so it applies exactly over a snapshot taken at 105."""
    protocol = bootstrapping()
    protocol.on_message(frame("update", [("99.8", "2")], [], prev=103, seq=107), T0 + 1)

    outputs = protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=105), T0 + 2)

    assert [(c.is_reset, c.venue_seq, len(c.bids)) for c in of(outputs, BookChange)] == [(True, 107, 3)]
    # Only the first update after the snapshot may straddle it.
    stale = protocol.on_message(frame("update", [("99.7", "1")], [], prev=106, seq=109), T0 + 3)
    assert stale == [
        BookStale("okx", "BTC-USDT", "gap: prevSeqId=106 after seqId=107", T0 + 3),
        Fetch("BTC-USDT#2", FETCH_PATH),
    ]


def test_rest_snapshot_with_an_empty_buffer_goes_live_at_once() -> None:
    protocol = bootstrapping()

    outputs = protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=105), T0 + 1)

    assert [(c.is_reset, c.venue_seq) for c in of(outputs, BookChange)] == [(True, 105)]
    assert protocol.on_message(frame("update", [("100", "8")], [], prev=100, seq=103), T0 + 2) == []  # in it
    straddling = protocol.on_message(frame("update", [("99.8", "2")], [], prev=103, seq=108), T0 + 3)
    assert [c.venue_seq for c in of(straddling, BookChange)] == [108]
    assert protocol.book("BTC-USDT").best_bid() == (1000, 10**8)


def test_rest_gap_after_sync_fetches_again_without_resubscribing() -> None:
    protocol = bootstrapping()
    protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=105), T0 + 1)
    gap = frame("update", [("99.8", "2")], [], prev=120, seq=125)

    outputs = protocol.on_message(gap, T0 + 2)

    assert outputs == [
        BookStale("okx", "BTC-USDT", "gap: prevSeqId=120 after seqId=105", T0 + 2),
        Fetch("BTC-USDT#2", FETCH_PATH),
    ]
    assert protocol.on_message(frame("update", [("99.7", "2")], [], prev=125, seq=126), T0 + 3) == []  # buffered
    resynced = protocol.on_rest("BTC-USDT#2", 200, rest_body(BIDS, ASKS, seq=120), T0 + 4)
    assert [(c.venue_seq, len(c.bids)) for c in of(resynced, BookChange)] == [(126, 4)]


def test_rest_failures_are_fetched_again_then_reconnect() -> None:
    protocol = bootstrapping()
    answers = [
        (500, ""),
        (200, "not json"),
        (200, '{"code":"50011","msg":"Rate limit reached","data":[]}'),
        (200, rest_body(BIDS, ASKS, seq=None)),
        (200, rest_body([("99.95", "1")], ASKS, seq=1)),
    ]
    assert len(answers) == MAX_SNAPSHOT_ATTEMPTS
    for n, (status, body) in enumerate(answers, start=1):
        assert protocol.on_rest(f"BTC-USDT#{n}", status, body, T0 + n) == [Fetch(f"BTC-USDT#{n + 1}", FETCH_PATH)]
    outputs = protocol.on_rest("BTC-USDT#6", 503, "", T0 + 9)
    assert outputs == [Reconnect("BTC-USDT: snapshot HTTP 503; 6 snapshots in a row")]


def test_rest_mode_still_takes_a_ws_snapshot() -> None:
    protocol = bootstrapping()
    outputs = protocol.on_message(frame("snapshot", BIDS, ASKS, prev=-1, seq=50), T0 + 1)
    assert [(c.is_reset, c.venue_seq) for c in of(outputs, BookChange)] == [(True, 50)]
    assert protocol.on_rest("BTC-USDT#1", 200, rest_body(BIDS, ASKS, seq=40), T0 + 2) == []


# --- invariant --------------------------------------------------------------------------------------

level_change = st.tuples(
    st.sampled_from([BID, ASK]),
    st.integers(min_value=0, max_value=40),  # distance from the touch in ticks of 0.1
    st.integers(min_value=0, max_value=3_000),  # size in 0.001; 0 deletes
)


def _text(side: str, distance: int, size: int) -> tuple[str, str]:
    tick = 1_000 - 1 - distance if side == BID else 1_000 + distance  # bids 99.9 and below, asks 100.0 and up
    whole, frac = divmod(size, 1_000)
    size_text = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if size else "0"
    return f"{tick // 10}.{tick % 10}".removesuffix(".0"), size_text


@settings(max_examples=150, deadline=None)
@given(
    snapshot=st.lists(level_change.filter(lambda c: c[2] > 0), max_size=60),
    updates=st.lists(st.lists(level_change, max_size=8), min_size=1, max_size=25),
    steps=st.lists(st.integers(min_value=0, max_value=5), min_size=25, max_size=25),
)
def test_random_updates_with_true_checksums_never_go_stale_and_match_a_dict_model(
    snapshot: list[tuple[str, int, int]], updates: list[list[tuple[str, int, int]]], steps: list[int]
) -> None:
    protocol = OKXProtocol([BTC_USDT])
    protocol.on_open(T0)
    model: dict[str, dict[int, tuple[str, str]]] = {BID: {}, ASK: {}}
    client: dict[str, dict[int, int]] = {BID: {}, ASK: {}}

    def write(changes: list[tuple[str, int, int]]) -> dict[str, list[tuple[str, str]]]:
        written: dict[str, list[tuple[str, str]]] = {BID: [], ASK: []}
        for side, distance, size in changes:
            price, size_text = _text(side, distance, size)
            written[side].append((price, size_text))
            if size:
                model[side][int(Decimal(price) * 10)] = (price, size_text)
            else:
                model[side].pop(int(Decimal(price) * 10), None)
        return written

    def model_top(side: str) -> list[tuple[str, str]]:
        return [model[side][p] for p in sorted(model[side], reverse=side == BID)]

    written = write(snapshot)
    sent = [okx_checksum(model_top(BID), model_top(ASK))]
    outputs = protocol.on_message(frame("snapshot", written[BID], written[ASK], prev=-1, seq=1, checksum=sent[0]), T0)
    seq = 1
    for update, step in zip(updates, steps, strict=False):
        written = write(update)
        sent.append(okx_checksum(model_top(BID), model_top(ASK)))
        text = frame("update", written[BID], written[ASK], prev=seq, seq=seq + step, checksum=sent[-1])
        outputs += protocol.on_message(text, T0 + seq)
        seq += step

    assert not of(outputs, BookStale)
    assert not of(outputs, Send)
    # An empty book's CRC32 is 0, which reads as "no checksum sent".
    assert [v.is_ok for v in checksums(outputs)] == [True] * sum(1 for c in sent if c)
    book = protocol.book("BTC-USDT")
    for side in (BID, ASK):
        expected = [(p, to_units(model[side][p][1], 8)) for p in sorted(model[side], reverse=side == BID)]
        assert book.top(side) == expected
        assert book.top_text(side, 100) == model_top(side)
    for change in of(outputs, BookChange):
        assert change.is_reset or change.bids or change.asks
        apply_to_client(client, change)
    assert sorted(client[BID].items()) == sorted(book.top(BID))
    assert sorted(client[ASK].items()) == sorted(book.top(ASK))


int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
json_value = st.recursive(
    st.none() | st.booleans() | int64 | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
book_item = st.fixed_dictionaries(
    {},
    optional={
        "asks": json_value | st.lists(st.lists(st.text(alphabet="0123456789.-e", max_size=6), max_size=4)),
        "bids": json_value | st.lists(st.lists(st.text(alphabet="0123456789.-e", max_size=6), max_size=4)),
        "checksum": json_value,
        "seqId": json_value | st.integers(min_value=-1, max_value=20),
        "prevSeqId": json_value | st.integers(min_value=-1, max_value=20),
        "ts": json_value,
    },
)


@settings(max_examples=200, deadline=None)
@given(
    channel=st.sampled_from(["books", "trades", "tickers"]),
    action=st.sampled_from(["snapshot", "update", "x"]) | json_value,
    data=st.lists(book_item | json_value, max_size=3) | json_value,
)
def test_random_frames_never_raise(channel: str, action: Any, data: Any) -> None:
    protocol = live()
    text = orjson.dumps({"arg": {"channel": channel, "instId": "BTC-USDT"}, "action": action, "data": data}).decode()
    protocol.on_message(text, T0 + 1)
    rest = OKXProtocol([BTC_USDT], use_ws_snapshot=False)
    rest.on_open(T0)
    rest.on_message(text, T0 + 1)
    rest.on_rest("BTC-USDT#1", 200, orjson.dumps({"code": "0", "data": [data]}).decode(), T0 + 2)
