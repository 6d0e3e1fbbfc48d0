"""The replay venue: serves a recording over loopback in the venue's own WebSocket and REST protocol.

The asyncio shell around `domain.recording` and `domain.faults`. Every WebSocket connection, on any path,
is served the `recv` frames of one recorded conn (`?conn=KRAKEN.ws.48`, else the recording's conns in
turn), from the first frame, after the client's first frame if the recorded client spoke first (a
subscription). After the last frame the socket stays open and idle. A REST GET of a recorded path and
query returns the recorded body. Counters in `stats` let tests see what was served.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from .domain.faults import FaultPlan
from .domain.recording import Frame, Recording, pacing_delays_s
from .domain.replay_depth import live_binance_depth, live_kraken_v1_snapshot, live_okx_snapshot

log = logging.getLogger(__name__)

# Yield to the loop this often when sending as fast as possible, so pings and other connections get a turn.
_YIELD_EVERY_FRAMES = 64
_MAX_CLIENT_FRAME_BYTES = 1 << 20


@dataclass
class ReplayStats:
    """What the venue has served so far; tests read it."""

    connections_accepted: int = 0
    connections_by_conn: Counter[str] = field(default_factory=Counter)
    frames_sent: Counter[str] = field(default_factory=Counter)  # per recorded conn, over all its connections
    kills: Counter[str] = field(default_factory=Counter)
    http_served: Counter[str] = field(default_factory=Counter)  # per path and query
    http_not_found: int = 0
    snapshots_synthesised: int = 0  # snapshots sent in answer to a resubscription


class ReplayVenue:
    """`await start(host, port)` → the port; `await stop()` closes every socket. One event loop only."""

    def __init__(self, recording: Recording, *, speed: float | None = None, faults: FaultPlan | None = None) -> None:
        self.recording = recording
        self.speed = speed
        self.faults = faults or FaultPlan()
        # Faults are applied once, up front: a spec that fits nothing fails here, before anything listens.
        self.frames: dict[str, list[Frame]] = self.faults.apply_all(
            {conn: c.frames for conn, c in recording.connections.items()}
        )
        self.stats = ReplayStats()
        self.host = "127.0.0.1"
        self.port = 0
        self._turns: Iterator[str] = itertools.cycle(list(recording.connections))
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._served_origin: dict[str, int] = {}  # the furthest recorded frame served, per conn

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 picks a free port) and return the real port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = host, int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"replay venue stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def served_origin(self, conn: str) -> int:
        """Index of the furthest recorded frame of `conn` served so far (-1 before any)."""
        return self._served_origin.get(conn, -1)

    def ws_url(self, conn: str) -> str:
        return f"ws://{self.host}:{self.port}/?conn={conn}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=_MAX_CLIENT_FRAME_BYTES)
        if ws.can_prepare(request).ok:
            return await self._serve_ws(request, ws)
        if request.method != "GET":
            return _error(405, "method_not_allowed", "the replay venue serves GET only", {"method": request.method})
        return self._serve_http(request)

    def _serve_http(self, request: web.Request) -> web.Response:
        path = request.raw_path
        responses = self.recording.http.get(path) or self.recording.http.get(request.path_qs)
        if not responses:
            self.stats.http_not_found += 1
            detail = {"path": path, "recorded": list(self.recording.http)}
            return _error(404, "not_recorded", "no http record for this path and query", detail)
        # The same URL fetched twice in a recording is answered in the recorded order, then the last again.
        served = self.stats.http_served[responses[0].path_qs]
        self.stats.http_served[responses[0].path_qs] += 1
        body = responses[min(served, len(responses) - 1)].body
        if served >= len(responses) and request.path == "/api/v3/depth":
            body = self._live_depth(request, body)
        return web.Response(text=body, content_type="application/json")

    def _resubscribe_snapshots(self, conn: str, text: str, served: list[Frame]) -> list[str]:
        """OKX `books` and Kraken v1 `book` subscriptions answered with a snapshot rebuilt to this point."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(message, dict):
            return []
        recorded = self.recording.connections[conn].frames
        upto = self._served_origin.get(conn, -1)
        out: list[str | None] = []
        if message.get("op") == "subscribe":
            for arg in message.get("args", []):
                if isinstance(arg, dict) and arg.get("channel") == "books":
                    out.append(live_okx_snapshot(recorded, served, upto, str(arg.get("instId"))))
        elif message.get("event") == "subscribe" and (message.get("subscription") or {}).get("name") == "book":
            depth = int(message["subscription"].get("depth", 10))
            out += [live_kraken_v1_snapshot(recorded, upto, str(pair), depth) for pair in message.get("pair", [])]
        return [snapshot for snapshot in out if snapshot is not None]

    def _live_depth(self, request: web.Request, recorded: str) -> str:
        """A Binance depth request beyond the recorded ones (a resync): the venue's book as served so far."""
        symbol = request.query.get("symbol", "")
        limit = int(request.query.get("limit", "100"))
        # Binance recordings carry the depth diffs of every symbol on one conn.
        conn = next(iter(self._served_origin), None)
        if conn is None:
            return recorded
        frames = self.recording.connections[conn].frames
        return live_binance_depth(recorded, frames, self._served_origin[conn], symbol, limit)

    async def _serve_ws(self, request: web.Request, ws: web.WebSocketResponse) -> web.StreamResponse:
        conn = request.query.get("conn") or next(self._turns, "")
        if conn not in self.recording.connections:
            detail = {"conn": conn, "recorded": list(self.recording.connections)}
            return _error(404, "unknown_conn", "no WebSocket conn of that name in the recording", detail)
        connection_index = self.stats.connections_by_conn[conn]
        self.stats.connections_accepted += 1
        self.stats.connections_by_conn[conn] += 1
        await ws.prepare(request)
        self._sockets.add(ws)
        subscribed = asyncio.Event()
        if not self.recording.connections[conn].waits_for_subscribe:
            subscribed.set()
        kill_after = self.faults.kill_after(conn, connection_index)
        kill = "no kill" if kill_after is None else f"kill after {kill_after} frames"
        log.info("replay %s: connection #%d accepted (%s)", conn, connection_index, kill)
        # Frame faults happen once, on a conn's first connection; a reconnection gets the clean recording.
        frames = self.frames[conn] if connection_index == 0 else list(self.recording.connections[conn].frames)
        served: list[Frame] = []
        streamer = asyncio.create_task(self._stream(request, ws, conn, frames, served, subscribed, kill_after))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT and message.data == "ping":
                    await ws.send_str("pong")  # OKX's text keep-alive; WebSocket pings are answered by aiohttp
                elif message.type == WSMsgType.TEXT and subscribed.is_set():
                    # A resubscription mid-stream: the venue answers with a fresh snapshot of the book now.
                    for text in self._resubscribe_snapshots(conn, message.data, served):
                        await ws.send_str(text)
                        self.stats.snapshots_synthesised += 1
                elif message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    subscribed.set()
        finally:
            streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streamer
            self._sockets.discard(ws)
        return ws

    async def _stream(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        conn: str,
        frames: list[Frame],
        served: list[Frame],
        subscribed: asyncio.Event,
        kill_after: int | None,
    ) -> None:
        await subscribed.wait()
        delays = pacing_delays_s(frames, start_ts_s=self.recording.connections[conn].start_ts_s, speed=self.speed)
        loop = asyncio.get_running_loop()
        origin = loop.time()
        try:
            for sent, (frame, due_s) in enumerate(zip(frames, delays, strict=True)):
                if sent == kill_after:
                    break
                wait_s = origin + due_s - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                elif sent % _YIELD_EVERY_FRAMES == _YIELD_EVERY_FRAMES - 1:
                    await asyncio.sleep(0)
                await ws.send_str(frame.text)
                served.append(frame)
                self.stats.frames_sent[conn] += 1
                if frame.origin > self._served_origin.get(conn, -1):
                    self._served_origin[conn] = frame.origin
        except ConnectionError:
            return  # the client went away mid-stream
        if kill_after is not None and kill_after <= len(frames):
            self._kill(request, conn, kill_after)

    def _kill(self, request: web.Request, conn: str, frames_sent: int) -> None:
        """Drop the TCP connection without a WebSocket close frame, as a venue or a network failure does.

        `close()` rather than `abort()`: the frames already written still reach the client first.
        """
        self.stats.kills[conn] += 1
        log.info("replay %s: killed after %d frames", conn, frames_sent)
        if request.transport is not None:
            request.transport.close()


def _error(status: int, code: str, message: str, detail: Mapping[str, object]) -> web.Response:
    return web.json_response({"code": code, "message": message, "detail": detail}, status=status)
