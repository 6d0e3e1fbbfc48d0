"""The replay venue over real loopback sockets: verbatim frames, REST snapshots, subscriptions, faults, pacing."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import orjson
import pytest

from apps.orderbook.domain.faults import FaultPlan
from apps.orderbook.domain.recording import FrameTag, Recording, parse_recording, tag_frame
from apps.orderbook.replay import ReplayVenue

VENUES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "venues"
BINANCE = "binance_spot_2021-10-12"
OKX = "okx_2022-05-13"
KRAKEN = "kraken_v1_2021-04-17"
OKX_SUBSCRIBE = '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}'
RECEIVE_TIMEOUT_S = 5.0


@functools.cache
def _lines(name: str) -> tuple[str, ...]:
    return tuple((VENUES / f"{name}.replay.jsonl").read_text(encoding="utf-8").splitlines())


def lines(name: str) -> tuple[str, ...]:
    if not (VENUES / f"{name}.replay.jsonl").is_file():
        pytest.skip(f"recording {name} missing from {VENUES}")
    return _lines(name)


@functools.cache
def _recording(name: str) -> Recording:
    return parse_recording(lines(name))


def recording(name: str) -> Recording:
    lines(name)  # skips when missing
    return _recording(name)


def recorded_texts(name: str, conn: str) -> list[str]:
    return [frame.text for frame in recording(name).connections[conn].frames]


def nkn_depth_ids(texts: list[str]) -> list[int]:
    """The `u` of each NKNUSDT depthUpdate, in order (bookTickers of NKNUSDT carry `"s"` too, so tag them)."""
    return [orjson.loads(t)["data"]["u"] for t in texts if tag_frame(t) == FrameTag("depthUpdate", "NKNUSDT")]


def is_okx_books_push(text: str, instrument: str) -> bool:
    tag = tag_frame(text)
    return tag.kind == "books" and tag.instrument == instrument and tag.action != ""


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=20))


@asynccontextmanager
async def serving(rec: Recording, *, speed: float | None = None, faults: str = "") -> AsyncIterator[ReplayVenue]:
    venue = ReplayVenue(rec, speed=speed, faults=FaultPlan.parse(faults))
    await venue.start("127.0.0.1", 0)
    try:
        yield venue
    finally:
        await venue.stop()


@asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def receive_texts(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[str]:
    texts: list[str] = []
    while len(texts) < count:
        message = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
        assert message.type == aiohttp.WSMsgType.TEXT, f"after {len(texts)} frames: {message}"
        texts.append(message.data)
    return texts


async def replay_all(rec: Recording, conn: str, *, faults: str) -> list[str]:
    """Every frame the venue serves on one connection to `conn` (subscribing first if the conn waits)."""
    async with (
        serving(rec, speed=0, faults=faults) as venue,
        client() as session,
        session.ws_connect(venue.ws_url(conn)) as ws,
    ):
        if rec.connections[conn].waits_for_subscribe:
            await ws.send_str(OKX_SUBSCRIBE if conn.startswith("OKX") else "{}")
        texts = await receive_texts(ws, len(venue.frames[conn]))
        assert await is_silent(ws, 0.1)
        return texts


async def is_silent(ws: aiohttp.ClientWebSocketResponse, for_s: float) -> bool:
    try:
        message = await ws.receive(timeout=for_s)
    except TimeoutError:
        return True
    pytest.fail(f"expected silence, got {message}")


def test_every_binance_frame_arrives_verbatim_and_in_order_at_full_speed_then_the_socket_idles() -> None:
    rec = recording(BINANCE)
    expected = recorded_texts(BINANCE, "BINANCE.ws.1")

    async def scenario() -> None:
        async with serving(rec, speed=0) as venue, client() as session:
            async with session.ws_connect(f"ws://127.0.0.1:{venue.port}/stream?streams=nknusdt@depth") as ws:
                assert await receive_texts(ws, len(expected)) == expected
                assert await is_silent(ws, 0.2)
                assert not ws.closed
            assert venue.stats.frames_sent["BINANCE.ws.1"] == len(expected)
            assert venue.stats.connections_accepted == 1

    run(scenario)


def test_a_kraken_conn_chosen_by_query_arrives_verbatim_after_the_subscription() -> None:
    rec = recording(KRAKEN)
    expected = recorded_texts(KRAKEN, "KRAKEN.ws.50")

    async def scenario() -> None:
        async with serving(rec, speed=0) as venue, client() as session:
            async with session.ws_connect(venue.ws_url("KRAKEN.ws.50")) as ws:
                await ws.send_str('{"event":"subscribe","pair":["XMR/USD"],"subscription":{"name":"book"}}')
                assert await receive_texts(ws, len(expected)) == expected
            assert venue.stats.frames_sent == {"KRAKEN.ws.50": len(expected)}

    run(scenario)


def test_connections_without_a_conn_query_take_the_recorded_conns_in_turn() -> None:
    rec = recording(KRAKEN)
    firsts = [recorded_texts(KRAKEN, conn)[0] for conn in ("KRAKEN.ws.48", "KRAKEN.ws.49", "KRAKEN.ws.50")]

    async def scenario() -> None:
        async with serving(rec, speed=0) as venue, client() as session:
            received = []
            for _ in range(4):
                async with session.ws_connect(f"ws://127.0.0.1:{venue.port}/") as ws:
                    await ws.send_str("{}")
                    received += await receive_texts(ws, 1)
            assert received == [*firsts, firsts[0]]
            assert venue.stats.connections_by_conn == {"KRAKEN.ws.48": 2, "KRAKEN.ws.49": 1, "KRAKEN.ws.50": 1}

    run(scenario)


def test_unknown_conn_is_refused_at_the_handshake() -> None:
    async def scenario() -> None:
        async with serving(recording(OKX), speed=0) as venue, client() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(venue.ws_url("OKX.ws.9"))
            assert refused.value.status == 404

    run(scenario)


def test_binance_rest_snapshot_is_served_for_the_exact_recorded_path_and_query() -> None:
    rec = recording(BINANCE)
    path = "/api/v3/depth?symbol=NKNUSDT&limit=1000"

    async def scenario() -> None:
        async with serving(rec, speed=0) as venue, client() as session:
            async with session.get(venue.http_url + path) as response:
                assert response.status == 200
                assert response.content_type == "application/json"
                assert await response.text() == rec.http[path][0].body
            async with session.get(venue.http_url + "/api/v3/depth?symbol=NKNUSDT&limit=5000") as response:
                assert response.status == 404
                body = await response.json()
                assert body["code"] == "not_recorded"
                assert path in body["detail"]["recorded"]
            assert venue.stats.http_served == {path: 1}
            assert venue.stats.http_not_found == 1

    run(scenario)


def test_okx_waits_for_the_subscription_and_answers_text_pings() -> None:
    rec = recording(OKX)
    expected = recorded_texts(OKX, "OKX.ws.1")

    async def scenario() -> None:
        async with (
            serving(rec, speed=0) as venue,
            client() as session,
            session.ws_connect(venue.ws_url("OKX.ws.1")) as ws,
        ):
            assert await is_silent(ws, 0.3)
            await ws.send_str("ping")
            assert await receive_texts(ws, 1) == ["pong"]  # a keep-alive is no subscription
            assert await is_silent(ws, 0.2)
            assert venue.stats.frames_sent["OKX.ws.1"] == 0
            await ws.send_str(OKX_SUBSCRIBE)
            assert await receive_texts(ws, len(expected)) == expected
            await ws.send_str("ping")
            assert await receive_texts(ws, 1) == ["pong"]

    run(scenario)


def test_dropped_and_duplicated_depth_updates_reach_the_client_that_way() -> None:
    depth_ids = nkn_depth_ids(recorded_texts(BINANCE, "BINANCE.ws.1"))
    faults = "drop:depthUpdate:NKNUSDT:5,dup:depthUpdate:NKNUSDT:7:3"
    texts = asyncio.run(replay_all(recording(BINANCE), "BINANCE.ws.1", faults=faults))
    assert nkn_depth_ids(texts) == [*depth_ids[:4], *depth_ids[5:10], depth_ids[6], *depth_ids[10:]]
    assert len(texts) == len(recorded_texts(BINANCE, "BINANCE.ws.1"))  # one dropped, one added


def test_a_corrupted_okx_update_arrives_with_exactly_one_size_changed() -> None:
    recorded = recorded_texts(OKX, "OKX.ws.1")
    texts = asyncio.run(replay_all(recording(OKX), "OKX.ws.1", faults="corrupt:books.update:BTC-USDT:4"))
    [changed] = [i for i, (a, b) in enumerate(zip(recorded, texts, strict=True)) if a != b]
    assert tag_frame(texts[changed]) == FrameTag("books", "BTC-USDT", "update")
    before, after = orjson.loads(recorded[changed]), orjson.loads(texts[changed])
    [(old_level, new_level)] = [
        (level_before, level_after)
        for side in ("asks", "bids")
        for level_before, level_after in zip(before["data"][0][side], after["data"][0][side], strict=True)
        if level_before != level_after
    ]
    assert (old_level[0], old_level[2:]) == (new_level[0], new_level[2:])
    assert old_level[1] != new_level[1]


def test_okx_seq_synthesis_reaches_the_client_with_keepalive_and_reset() -> None:
    texts = asyncio.run(replay_all(recording(OKX), "OKX.ws.1", faults="okxseq:BTC-USDT:3:6"))
    pushes = [orjson.loads(t)["data"][0] for t in texts if is_okx_books_push(t, "BTC-USDT")]
    assert [p["checksum"] for p in pushes] == [0] * len(pushes)
    assert pushes[0]["prevSeqId"] == -1
    assert pushes[3]["prevSeqId"] == pushes[3]["seqId"] == pushes[2]["seqId"]  # keep-alive after the 3rd
    assert pushes[3]["asks"] == pushes[3]["bids"] == []
    assert pushes[6]["seqId"] < pushes[6]["prevSeqId"] == pushes[5]["seqId"]  # reset at the 6th (now 7th)
    assert all(b["prevSeqId"] == a["seqId"] for a, b in itertools.pairwise(pushes))


def test_kill_drops_the_connection_after_n_frames_and_the_next_one_restarts_the_conn() -> None:
    rec = recording(BINANCE)
    expected = recorded_texts(BINANCE, "BINANCE.ws.1")

    async def scenario() -> None:
        async with serving(rec, speed=0, faults="kill:40") as venue, client() as session:
            async with session.ws_connect(venue.ws_url("BINANCE.ws.1")) as ws:
                assert await receive_texts(ws, 40) == expected[:40]
                message = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
                assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR)
                assert ws.close_code != aiohttp.WSCloseCode.OK  # no close handshake: the TCP connection died
            async with session.ws_connect(venue.ws_url("BINANCE.ws.1")) as ws:
                assert await receive_texts(ws, len(expected)) == expected  # kill:40 fires once by default
            assert venue.stats.kills == {"BINANCE.ws.1": 1}
            assert venue.stats.frames_sent["BINANCE.ws.1"] == 40 + len(expected)

    run(scenario)


def test_pacing_at_speed_10_takes_about_a_tenth_of_the_recorded_span() -> None:
    # A short slice of the Binance recording: the conn's first frames up to 5 s after it opened.
    all_lines = lines(BINANCE)
    connect_ts = orjson.loads(all_lines[1])["ts"]
    records = [orjson.loads(line) for line in all_lines[:200]]
    rec = parse_recording(
        line for line, r in zip(all_lines, records, strict=False) if r["t"] != "recv" or r["ts"] < connect_ts + 5
    )
    frames = rec.connections["BINANCE.ws.1"].frames
    expected_s = (frames[-1].ts_s - rec.connections["BINANCE.ws.1"].start_ts_s) / 10
    assert len(frames) >= 20

    async def scenario() -> None:
        async with serving(rec, speed=10) as venue, client() as session:
            started = time.monotonic()
            async with session.ws_connect(venue.ws_url("BINANCE.ws.1")) as ws:
                await receive_texts(ws, len(frames))
                elapsed_s = time.monotonic() - started
        assert 0.5 * expected_s <= elapsed_s < 5 * expected_s

    run(scenario)


def test_stop_closes_idle_sockets_with_going_away() -> None:
    async def scenario() -> None:
        async with client() as session:
            venue = ReplayVenue(recording(OKX), speed=0)
            await venue.start()
            ws = await session.ws_connect(venue.ws_url("OKX.ws.1"))
            await venue.stop()
            message = await ws.receive(timeout=RECEIVE_TIMEOUT_S)
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert message.data == aiohttp.WSCloseCode.GOING_AWAY
            await ws.close()

    run(scenario)
