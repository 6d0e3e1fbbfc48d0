"""The fan-out benchmark's subscribers: one process holding a share of the K WebSocket connections.

`run_clients` is the target of each client process. It opens its connections (a few at a time, retrying
while the server's accept backlog is full), reports them ready, then records every delta: the time its
bytes were read from the socket minus the delta's publish `timestamp` (both `time.time_ns()`, one machine's
clock), and whether its `sequence` follows the connection's last one. When told the measured sequence range
it closes the connections and answers with the latencies inside that range, gaps and missing deltas.

The connections are asyncio protocols around the `websockets` library's Sans-I/O `ClientProtocol`: frames
are parsed in `data_received`, with no coroutine per message. A burst of K deliveries is read by a few
client processes sharing one core, so every microsecond a client spends per message shows up as latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

CONNECT_ATTEMPTS = 8


@dataclass(frozen=True)
class ClientPlan:
    url: str
    count: int
    headers: tuple[tuple[str, str], ...] = ()
    expect_snapshot: bool = False  # the platform: ready once the subscribe snapshot arrived
    connect_concurrency: int = 16
    open_timeout_s: float = 60.0


@dataclass
class Recorder:
    """Every delta of this process, in arrival order, as parallel arrays (connection, sequence, latency ns)."""

    progress: Any  # a multiprocessing RawValue: deltas so far, read by the benchmark to see the stream drain
    conn: array[int] = field(default_factory=lambda: array("i"))
    seq: array[int] = field(default_factory=lambda: array("q"))
    latency_ns: array[int] = field(default_factory=lambda: array("q"))
    kinds: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Subscriber(asyncio.Protocol):
    """One WebSocket connection and its view of the stream."""

    def __init__(self, index: int, plan: ClientPlan, recorder: Recorder) -> None:
        self.index = index
        self.plan = plan
        self.recorder = recorder
        self.ws = ClientProtocol(parse_uri(plan.url), max_size=None)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.last_seq: int | None = None
        self.gaps = 0
        self.close_code: int | None = None

    @property
    def is_open(self) -> bool:
        return self.ready.done() and not self.ready.exception() and not self.lost.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = self.ws.connect()
        for name, value in self.plan.headers:
            request.headers[name] = value
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                if ws.handshake_exc is not None:
                    self._fail(f"http {event.status_code}")
                elif not self.plan.expect_snapshot:
                    self.ready.set_result(None)
            elif event.opcode is Opcode.TEXT or event.opcode is Opcode.BINARY:
                self.on_message(event.data, now)
        self._flush()

    def on_message(self, data: bytes, now_ns: int) -> None:
        message = orjson.loads(data)
        kind = message.get("type")
        recorder = self.recorder
        if kind == "delta":
            seq = message["sequence"]
            if self.last_seq is not None and seq != self.last_seq + 1:
                self.gaps += 1
            self.last_seq = seq
            recorder.conn.append(self.index)
            recorder.seq.append(seq)
            recorder.latency_ns.append(now_ns - message["timestamp"])
            recorder.progress.value += 1  # one writer per process: no lock needed
            return
        recorder.kinds[str(kind)] += 1
        if kind == "snapshot":
            self.last_seq = int(message["sequence"])
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind == "error" and not self.ready.done():
            recorder.errors[f"error {message.get('code')}"] += 1

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_code = self.ws.close_code
        if not self.ready.done():
            self._fail(f"closed {self.close_code or 'abnormally'} before ready")
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.recorder.errors[reason] += 1
            self.ready.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.ws.close_expected():
            transport.close()

    async def close(self) -> None:
        if self.transport is None or self.lost.done():
            return
        self.ws.send_close(1000)
        self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), 5)
        if not self.lost.done():
            self.transport.abort()


def run_clients(plan: ClientPlan, pipe: Connection, progress: ctypes.c_longlong) -> None:
    """Process entry point: see the module docstring for the conversation over `pipe`."""
    asyncio.run(_main(plan, pipe, progress))


async def _main(plan: ClientPlan, pipe: Connection, progress: ctypes.c_longlong) -> None:
    recorder = Recorder(progress)
    gate = asyncio.Semaphore(plan.connect_concurrency)
    opened = await asyncio.gather(*(_open(i, plan, recorder, gate) for i in range(plan.count)))
    subscribers = [s for s in opened if s is not None]
    pipe.send({"ready": len(subscribers), "failed": plan.count - len(subscribers), "errors": dict(recorder.errors)})
    loop = asyncio.get_running_loop()
    command: dict[str, Any] = await loop.run_in_executor(None, pipe.recv)
    # Read now, before our own close handshakes: a code here means the server closed the connection.
    early = Counter(str(s.close_code or "abnormal") for s in subscribers if s.lost.done())
    await asyncio.gather(*(s.close() for s in subscribers))
    pipe.send(_summary(recorder, subscribers, early, command["first_seq"], command["last_seq"]))


async def _open(index: int, plan: ClientPlan, recorder: Recorder, gate: asyncio.Semaphore) -> Subscriber | None:
    uri = parse_uri(plan.url)
    loop = asyncio.get_running_loop()
    for attempt in range(CONNECT_ATTEMPTS):
        async with gate:
            sub = Subscriber(index, plan, recorder)
            try:
                await loop.create_connection(lambda s=sub: s, uri.host, uri.port)
            except OSError as exc:
                # A full accept backlog refuses or resets; back off and try again.
                if attempt == CONNECT_ATTEMPTS - 1:
                    recorder.errors[type(exc).__name__] += 1
                    return None
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            try:
                await asyncio.wait_for(asyncio.shield(sub.ready), plan.open_timeout_s)
            except TimeoutError:
                recorder.errors["not ready in time"] += 1
                await sub.close()
                return None
            except ConnectionError:
                return None
            return sub
    return None


def _summary(
    recorder: Recorder, subscribers: list[Subscriber], early: Counter[str], first_seq: int, last_seq: int
) -> dict[str, Any]:
    expected = last_seq - first_seq + 1
    received = Counter[int]()
    latencies = array("q")
    for conn, seq, latency in zip(recorder.conn, recorder.seq, recorder.latency_ns, strict=True):
        if first_seq <= seq <= last_seq:
            received[conn] += 1
            latencies.append(latency)
    return {
        "latency_ns": latencies.tobytes(),
        "deliveries": len(recorder.seq),
        "measured_deliveries": len(latencies),
        "missing": sum(max(0, expected - received[s.index]) for s in subscribers),
        "gaps": sum(s.gaps for s in subscribers),
        "closes": dict(early),
        "kinds": dict(recorder.kinds),
        "errors": dict(recorder.errors),
    }
