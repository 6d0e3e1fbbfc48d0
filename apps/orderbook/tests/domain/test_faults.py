"""Recordings and replay faults on the real captures: parsing, pacing, drop, duplicate, corrupt, OKX seqIds, kill."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from apps.orderbook.domain.book import ASK, BID, OrderBook
from apps.orderbook.domain.checksum import kraken_book_checksum, okx_book_checksum
from apps.orderbook.domain.faults import (
    RESET_SEQ_ID,
    Corrupt,
    Drop,
    Duplicate,
    FaultError,
    FaultPlan,
    FaultSpecError,
    Kill,
    OkxSeq,
    Selector,
    corrupt_level,
    drop,
    duplicate,
)
from apps.orderbook.domain.recording import (
    Frame,
    FrameTag,
    Recording,
    RecordingError,
    pacing_delays_s,
    parse_recording,
    tag_frame,
)

VENUES = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "venues"
BINANCE = "binance_spot_2021-10-12"
OKX = "okx_2022-05-13"
KRAKEN = "kraken_v1_2021-04-17"


@functools.cache
def _load(name: str) -> Recording:
    return parse_recording((VENUES / f"{name}.replay.jsonl").read_text(encoding="utf-8").splitlines())


def recording(name: str) -> Recording:
    if not (VENUES / f"{name}.replay.jsonl").is_file():
        pytest.skip(f"recording {name} missing from {VENUES}")
    return _load(name)


def frames_of(name: str, conn: str) -> tuple[Frame, ...]:
    return recording(name).connections[conn].frames


def messages(frames: list[Frame] | tuple[Frame, ...], kind: str, instrument: str) -> list[Any]:
    return [orjson.loads(f.text) for f in frames if tag_frame(f.text) == FrameTag(kind, instrument, "")]


def okx_pushes(frames: list[Frame] | tuple[Frame, ...], instrument: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(f.text)
        for f in frames
        if tag_frame(f.text).kind == "books" and tag_frame(f.text).instrument == instrument and tag_frame(f.text).action
    ]


def okx_checksums_hold(frames: list[Frame] | tuple[Frame, ...], instrument: str) -> list[bool]:
    """Rebuild the instrument's book push by push; for each, does its checksum match the rebuilt book?"""
    book = OrderBook(8, 8)
    results = []
    for message in okx_pushes(frames, instrument):
        data = message["data"][0]
        bids, asks = [(lv[0], lv[1]) for lv in data["bids"]], [(lv[0], lv[1]) for lv in data["asks"]]
        if message["action"] == "snapshot":
            book.load(bids, asks)
        else:
            for price, size in bids:
                book.apply(BID, price, size)
            for price, size in asks:
                book.apply(ASK, price, size)
        results.append(okx_book_checksum(book) == data["checksum"])
    return results


def level_differences(before: Any, after: Any) -> list[tuple[Any, Any]]:
    """Pairs of JSON leaves that differ between two structurally equal documents."""
    if isinstance(before, dict) and isinstance(after, dict) and before.keys() == after.keys():
        return [d for key in before for d in level_differences(before[key], after[key])]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for b, a in zip(before, after, strict=True) for d in level_differences(b, a)]
    return [] if before == after else [(before, after)]


def test_recording_groups_frames_by_conn_in_connect_order_and_indexes_http_by_path_and_query() -> None:
    kraken = recording(KRAKEN)
    assert kraken.ws_conns() == ["KRAKEN.ws.48", "KRAKEN.ws.49", "KRAKEN.ws.50"]
    assert [len(c.frames) for c in kraken.connections.values()] == [49, 60, 4321]
    assert all(c.waits_for_subscribe for c in kraken.connections.values())
    assert [f.origin for f in kraken.connections["KRAKEN.ws.49"].frames] == list(range(60))
    binance = recording(BINANCE)
    assert not binance.connections["BINANCE.ws.1"].waits_for_subscribe
    assert "/api/v3/depth?symbol=NKNUSDT&limit=1000" in binance.http
    assert binance.http["/api/v3/depth?symbol=NKNUSDT&limit=1000"][0].body.startswith('{"lastUpdateId":499869752,')


def test_recording_rejects_a_file_that_is_not_one() -> None:
    with pytest.raises(RecordingError, match="header"):
        parse_recording(['{"t":"recv","conn":"X","ts":1,"data":"{}"}'])
    with pytest.raises(RecordingError, match="format"):
        parse_recording(['{"t":"header","format":1}'])
    with pytest.raises(RecordingError, match="line 2"):
        parse_recording(['{"t":"header","format":2}', "not json"])


def test_pacing_delays_are_recorded_offsets_divided_by_speed() -> None:
    frames = [Frame(100.5, "a"), Frame(101.0, "b"), Frame(100.9, "c"), Frame(103.0, "d")]
    assert pacing_delays_s(frames, start_ts_s=100.0, speed=1.0) == [0.5, 1.0, 1.0, 3.0]  # never backwards
    assert pacing_delays_s(frames, start_ts_s=100.0, speed=10.0) == pytest.approx([0.05, 0.1, 0.1, 0.3])
    assert pacing_delays_s(frames, start_ts_s=100.0, speed=0) == [0.0] * 4
    assert pacing_delays_s(frames, start_ts_s=100.0, speed=None) == [0.0] * 4


def test_frames_of_every_venue_are_tagged_by_kind_instrument_and_action() -> None:
    binance = frames_of(BINANCE, "BINANCE.ws.1")
    assert tag_frame(binance[0].text) == FrameTag("depthUpdate", "NKNUSDT")
    assert any(tag_frame(f.text) == FrameTag("bookTicker", "NKNUSDT") for f in binance)
    okx = frames_of(OKX, "OKX.ws.1")
    assert tag_frame(okx[0].text) == FrameTag("subscribe", "BTC-USD-220527")
    assert FrameTag("books", "BTC-USDT", "snapshot") in {tag_frame(f.text) for f in okx}
    kraken = frames_of(KRAKEN, "KRAKEN.ws.50")
    assert FrameTag("book", "XMR/USD", "update") in {tag_frame(f.text) for f in kraken[:200]}
    assert tag_frame("pong") == FrameTag("", "")


def test_dropping_the_fifth_nknusdt_depth_update_leaves_a_binance_gap() -> None:
    frames = frames_of(BINANCE, "BINANCE.ws.1")
    before = [m["data"] for m in messages(frames, "depthUpdate", "NKNUSDT")]
    after = [
        m["data"] for m in messages(drop(frames, Selector("depthUpdate", "NKNUSDT", 5), 5), "depthUpdate", "NKNUSDT")
    ]
    assert after == before[:4] + before[5:]
    assert after[4]["U"] > after[3]["u"] + 1


def test_duplicate_sends_the_frame_again_right_after_or_later() -> None:
    frames = frames_of(BINANCE, "BINANCE.ws.1")
    seventh = Selector("depthUpdate", "NKNUSDT", 7)
    ids = [m["data"]["u"] for m in messages(frames, "depthUpdate", "NKNUSDT")]
    right_after = [m["data"]["u"] for m in messages(duplicate(frames, seventh, 7), "depthUpdate", "NKNUSDT")]
    assert right_after == [*ids[:7], ids[6], *ids[7:]]
    late = duplicate(frames, seventh, 7, later=3)
    assert [m["data"]["u"] for m in messages(late, "depthUpdate", "NKNUSDT")] == [*ids[:10], ids[6], *ids[10:]]
    assert len(late) == len(frames) + 1


def test_corrupting_an_okx_update_changes_one_size_and_breaks_its_checksum() -> None:
    frames = frames_of(OKX, "OKX.ws.1")
    assert all(okx_checksums_hold(frames, "BTC-USDT"))
    corrupted = corrupt_level(frames, Selector("books", "BTC-USDT", 5, "update"), 5)
    changed = [i for i, (a, b) in enumerate(zip(frames, corrupted, strict=True)) if a.text != b.text]
    assert len(changed) == 1
    before, after = orjson.loads(frames[changed[0]].text), orjson.loads(corrupted[changed[0]].text)
    [(old_size, new_size)] = level_differences(before, after)
    assert old_size != new_size
    assert len(old_size) == len(new_size)
    assert okx_pushes(corrupted, "BTC-USDT")[5] == after  # the 5th update is the 6th push, after the snapshot
    holds = okx_checksums_hold(corrupted, "BTC-USDT")
    assert holds[5] is False
    assert all(holds[:5])


def test_corrupting_a_kraken_update_breaks_its_checksum() -> None:
    frames = frames_of(KRAKEN, "KRAKEN.ws.50")
    corrupted = corrupt_level(frames, Selector("book", "XMR/USD", 3, "update"), 3)
    [index] = [i for i, (a, b) in enumerate(zip(frames, corrupted, strict=True)) if a.text != b.text]
    assert len(level_differences(orjson.loads(frames[index].text), orjson.loads(corrupted[index].text))) == 1
    book = OrderBook(10, 10)
    for frame in corrupted[: index + 1]:
        message = orjson.loads(frame.text)
        if tag_frame(frame.text).kind != "book" or message[-1] != "XMR/USD":
            continue
        for part in message[1:-2]:
            for key in ("as", "bs", "a", "b"):
                for level in part.get(key, []):
                    book.apply(ASK if key.startswith("a") else BID, level[0], level[1])
        for side in (BID, ASK):
            book.truncate(side, 1000)
    assert kraken_book_checksum(book) != int(orjson.loads(frames[index].text)[-3]["c"])


def test_corrupt_refuses_a_frame_without_a_book_checksum() -> None:
    with pytest.raises(FaultError, match="no OKX books or Kraken v1 book"):
        corrupt_level(frames_of(BINANCE, "BINANCE.ws.1"), Selector("depthUpdate", "NKNUSDT", 1), 1)


def test_okx_seq_synthesis_chains_seq_ids_with_a_keepalive_and_a_reset() -> None:
    frames = frames_of(OKX, "OKX.ws.1")
    plan = FaultPlan.parse("okxseq:BTC-USDT:10:30")
    result = plan.apply_all({"OKX.ws.1": frames})["OKX.ws.1"]
    assert len(result) == len(frames) + 1
    for instrument in ("BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"):
        pushes = [m["data"][0] for m in okx_pushes(result, instrument)]
        assert pushes[0]["prevSeqId"] == -1
        assert all(p["checksum"] == 0 for p in pushes)
        for previous, push in itertools.pairwise(pushes):
            assert push["prevSeqId"] == previous["seqId"]
            is_special = push["seqId"] <= push["prevSeqId"]
            assert is_special == (instrument == "BTC-USDT" and push in (pushes[10], pushes[30]))
    btc = [m["data"][0] for m in okx_pushes(result, "BTC-USDT")]
    keepalive, reset = btc[10], btc[30]  # after the 10th push; the 30th recorded push is the 31st now
    assert keepalive["prevSeqId"] == keepalive["seqId"]
    assert keepalive["asks"] == keepalive["bids"] == []
    assert reset["seqId"] == RESET_SEQ_ID < reset["prevSeqId"]
    original = okx_pushes(frames, "BTC-USDT")[29]["data"][0]
    assert (reset["asks"], reset["bids"], reset["ts"]) == (original["asks"], original["bids"], original["ts"])


def test_okx_seq_then_drop_leaves_a_visible_seq_gap() -> None:
    frames = frames_of(OKX, "OKX.ws.1")
    result = FaultPlan.parse("okxseq,drop:books.update:BTC-USDT:9").apply_all({"OKX.ws.1": frames})["OKX.ws.1"]
    pushes = [m["data"][0] for m in okx_pushes(result, "BTC-USDT")]
    gaps = [i for i in range(1, len(pushes)) if pushes[i]["prevSeqId"] != pushes[i - 1]["seqId"]]
    assert gaps == [9]


def test_plan_numbers_frames_as_recorded_whatever_earlier_faults_removed() -> None:
    frames = frames_of(BINANCE, "BINANCE.ws.1")
    ids = [m["data"]["u"] for m in messages(frames, "depthUpdate", "NKNUSDT")]
    plan = FaultPlan.parse("drop:depthUpdate:NKNUSDT:5,dup:depthUpdate:NKNUSDT:7")
    result = plan.apply_all({"BINANCE.ws.1": frames})["BINANCE.ws.1"]
    assert [m["data"]["u"] for m in messages(result, "depthUpdate", "NKNUSDT")] == (
        ids[:4] + ids[5:7] + [ids[6]] + ids[7:]
    )


def test_fault_spec_parses_every_fault_and_prints_back_canonically() -> None:
    plan = FaultPlan.parse(
        " drop:depthUpdate:NKNUSDT:5, dup:depthUpdate:nknusdt:7:3 ,corrupt:books.update:BTC-USDT:2@OKX.ws.1,"
        "okxseq:BTC-USDT:10,kill:40:2,kill:100@KRAKEN.ws.50"
    )
    assert plan.faults == (
        Drop(Selector("depthUpdate", "NKNUSDT", 5)),
        Duplicate(Selector("depthUpdate", "nknusdt", 7), later=3),
        Corrupt(Selector("books", "BTC-USDT", 2, "update"), conn="OKX.ws.1"),
        OkxSeq("BTC-USDT", keepalive_after=10),
        Kill(40, times=2),
        Kill(100, conn="KRAKEN.ws.50"),
    )
    assert FaultPlan.parse(str(plan)) == plan
    assert FaultPlan.parse("") == FaultPlan()


@pytest.mark.parametrize(
    "spec",
    ["drop:depthUpdate:NKNUSDT", "drop:depthUpdate:NKNUSDT:0", "dup:a:b:1:x", "kill", "kill:-1", "kill:5:0",
     "okxseq:*:3", "explode:1", "drop:depthUpdate:NKNUSDT:5@", "drop::NKNUSDT:1"],
)  # fmt: skip
def test_fault_spec_rejects_malformed_items(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        FaultPlan.parse(spec)


def test_kills_take_successive_connections_in_the_order_written() -> None:
    plan = FaultPlan.parse("kill:40:2,kill:100,kill:7@B")
    assert [plan.kill_after("A", i) for i in range(4)] == [40, 40, 100, None]
    assert [plan.kill_after("B", i) for i in range(5)] == [40, 40, 100, 7, None]


def test_a_fault_that_fits_no_conn_is_an_error() -> None:
    frames = {"BINANCE.ws.1": frames_of(BINANCE, "BINANCE.ws.1")}
    with pytest.raises(FaultError, match="no #999"):
        FaultPlan.parse("drop:depthUpdate:NKNUSDT:999").apply_all(frames)
    with pytest.raises(FaultError, match="no WebSocket conn"):
        FaultPlan.parse("drop:depthUpdate:NKNUSDT:1@OKX.ws.1").apply_all(frames)
    with pytest.raises(FaultError, match="no WebSocket conn"):
        FaultPlan.parse("kill:3@OKX.ws.1").apply_all(frames)
    with pytest.raises(FaultError, match="no OKX books push"):
        FaultPlan.parse("okxseq").apply_all(frames)


def test_unscoped_fault_applies_where_it_fits_on_a_multi_conn_recording() -> None:
    kraken = recording(KRAKEN)
    result = FaultPlan.parse("drop:book:XMR/USD:2").apply_all({c: x.frames for c, x in kraken.connections.items()})
    assert {conn: len(frames) for conn, frames in result.items()} == {
        "KRAKEN.ws.48": 49,
        "KRAKEN.ws.49": 60,
        "KRAKEN.ws.50": 4320,
    }
