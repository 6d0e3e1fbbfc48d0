"""Writing frames to one WebSocket connection, with a bounded queue so a slow reader cannot grow memory.

Two writers behind one interface:

- `DaphneEdge`, when the connection is served by daphne: frames, framed once (the same bytes for every
  connection), go straight to the connection's socket, with no coroutine per delivery; while the
  connection's Twisted buffer is past its high-water mark, frames wait in our queue.
- `AsgiEdge`, for any other ASGI server (and `WebsocketCommunicator` in tests): a queue drained by one
  task that awaits the ASGI `send`.

Either way, past `max_queue` waiting frames the connection is a slow consumer: the queue is dropped,
nothing more is written, and `on_overflow` runs (the consumer closes with code 4008). Daphne's `send`
is `functools.partial(Server.handle_reply, protocol)` (daphne 4); if that ever changes, `make_edge`
falls back to the ASGI writer rather than failing.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from autobahn.websocket.protocol import PreparedMessage

OverflowHandler = Callable[[], None]


class Frame:
    """One encoded message, shared by every connection it goes to; each transport's form made once."""

    __slots__ = ("_message", "_prepared", "is_binary", "payload")

    def __init__(self, payload: bytes, *, is_binary: bool) -> None:
        self.payload = payload
        self.is_binary = is_binary
        self._prepared: PreparedMessage | None = None
        self._message: dict[str, Any] | None = None

    def prepared(self) -> PreparedMessage:
        if self._prepared is None:
            # Server frames are not masked, so one framing serves every connection.
            self._prepared = PreparedMessage(self.payload, self.is_binary, False, True)
        return self._prepared

    def wire(self) -> bytes:
        """The whole WebSocket frame (header and payload) as a server sends it."""
        return bytes(self.prepared().payloadHybi)

    def asgi_message(self) -> dict[str, Any]:
        if self._message is None:
            if self.is_binary:
                self._message = {"type": "websocket.send", "bytes": self.payload}
            else:
                self._message = {"type": "websocket.send", "text": self.payload.decode()}
        return self._message


class Edge(ABC):
    """The interface: `write` never blocks and never raises; `is_open` is False after overflow or close."""

    __slots__ = ("_on_overflow", "_queue", "is_open", "max_queue")

    def __init__(self, max_queue: int, on_overflow: OverflowHandler) -> None:
        self._queue: deque[Frame] = deque()
        self._on_overflow = on_overflow
        self.max_queue = max_queue
        self.is_open = True

    @abstractmethod
    def write(self, frame: Frame) -> None: ...

    def _enqueue(self, frame: Frame) -> bool:
        """Queue a frame behind the others; past `max_queue` shut and report a slow consumer (False)."""
        self._queue.append(frame)
        if len(self._queue) > self.max_queue:
            self.shut()
            self._on_overflow()
            return False
        return True

    def queued(self) -> int:
        return len(self._queue)

    def shut(self) -> None:
        """Stop writing (the connection is closing); queued frames are dropped."""
        self.is_open = False
        self._queue.clear()

    def grant_close_grace(self, seconds: float) -> None:  # noqa: B027 - a no-op unless the server lets us
        """Give the client this long to read up to our close frame before the socket is dropped; only
        daphne's edge can, elsewhere the server's own close timeout applies."""


class DaphneEdge(Edge):
    """Frames straight to the socket while Twisted has nothing buffered for it, else through Twisted.

    Handing every frame to Twisted (`transport.write`) costs a write registration with the event loop and
    a deferred send per connection and frame: about 50 µs a delivery against 12 µs for a bare
    broadcaster (BENCHMARKS.md). When the connection's Twisted buffer is empty, one non-blocking `send`
    of the prepared frame does the whole job; whatever the kernel does not take goes to Twisted, and
    frames follow it through Twisted until it drains, so their order is kept.

    Back-pressure: Twisted's producer interface is taken by the HTTP channel that upgraded the
    connection, so the edge reads the transport's buffered byte count itself. Past `HIGH_WATER_BYTES`
    frames wait in the edge's queue, which moves on as the buffer drains (checked at every write, and
    heartbeats come every second); past `max_queue` waiting frames the connection is a slow consumer.
    Compression, TLS or a transport without a plain socket take autobahn's own path; the byte count is
    then read from the TCP transport underneath (for TLS, the encrypted bytes), when there is one.
    """

    __slots__ = ("_direct", "_protocol", "_tcp", "_transport")

    HIGH_WATER_BYTES = 256 * 1024

    def __init__(self, protocol: Any, max_queue: int, on_overflow: OverflowHandler) -> None:
        self._protocol = protocol
        self._transport: Any = getattr(protocol, "transport", None)
        self._direct = (
            getattr(protocol, "_perMessageCompress", None) is None
            and hasattr(self._transport, "socket")
            and hasattr(self._transport, "_tempDataLen")
            and hasattr(self._transport, "dataBuffer")
        )
        tcp = self._transport
        while tcp is not None and not hasattr(tcp, "dataBuffer"):
            tcp = getattr(tcp, "transport", None)  # TLS wraps the TCP transport
        self._tcp: Any = tcp if hasattr(tcp, "_tempDataLen") else None
        super().__init__(max_queue, on_overflow)

    def write(self, frame: Frame) -> None:
        if not self.is_open:
            return
        protocol = self._protocol
        if protocol.state != protocol.STATE_OPEN:
            self.shut()
            return
        if self._queue:
            self._drain()
        if self._queue or self.buffered_bytes() > self.HIGH_WATER_BYTES:
            self._enqueue(frame)
            return
        self._send(frame)

    def buffered_bytes(self) -> int:
        """Bytes Twisted holds for this connection, not yet taken by the kernel."""
        tcp = self._tcp
        if tcp is None:
            return 0
        return int(len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen)

    def _drain(self) -> None:
        while self._queue and self.buffered_bytes() <= self.HIGH_WATER_BYTES:
            self._send(self._queue.popleft())

    def _send(self, frame: Frame) -> None:
        if not self._direct:
            self._protocol.sendPreparedMessage(frame.prepared())
            return
        transport = self._transport
        data = frame.wire()
        if not transport._tempDataLen and transport.offset == len(transport.dataBuffer):
            try:
                sent = transport.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # a broken socket: Twisted's write meets the same error and closes the connection
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def grant_close_grace(self, seconds: float) -> None:
        # Autobahn drops a connection 1 s after our close frame unless the client answers it; a reader that
        # was stalled needs longer to get through its socket's backlog to the reason and the code.
        self._protocol.closeHandshakeTimeout = seconds


class AsgiEdge(Edge):
    __slots__ = ("_send", "_task", "_wake")

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]], max_queue: int, on_overflow: OverflowHandler):
        super().__init__(max_queue, on_overflow)
        self._send = send
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._pump())

    def write(self, frame: Frame) -> None:
        if self.is_open and self._enqueue(frame):
            self._wake.set()

    def shut(self) -> None:
        if self.is_open:
            super().shut()
            self._task.cancel()

    async def _pump(self) -> None:
        while self.is_open:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and self.is_open:
                await self._send(self._queue.popleft().asgi_message())


def make_edge(send: Any, max_queue: int, on_overflow: OverflowHandler) -> Edge:
    """The fastest writer this server allows for the connection behind `send`."""
    if isinstance(send, functools.partial) and getattr(send.func, "__name__", "") == "handle_reply" and send.args:
        protocol = send.args[0]
        if hasattr(protocol, "sendPreparedMessage") and hasattr(protocol, "STATE_OPEN"):
            return DaphneEdge(protocol, max_queue, on_overflow)
    return AsgiEdge(send, max_queue, on_overflow)
