"""Per-connection writers: order kept across partial socket writes, bounded queues, slow consumers."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from apps.orderbook.services.stream.edge import AsgiEdge, DaphneEdge, Frame, make_edge


class FakeSocket:
    def __init__(self, accept: list[int]) -> None:
        self.accept = accept  # bytes the kernel takes per send call; then everything
        self.sent = b""

    def send(self, data: bytes) -> int:
        n = self.accept.pop(0) if self.accept else len(data)
        if n == 0:
            raise BlockingIOError
        self.sent += data[:n]
        return n


class FakeTransport:
    """Twisted's tcp transport, as far as the edge looks at it."""

    def __init__(self, sock: FakeSocket) -> None:
        self.socket = sock
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self._tempDataLen += len(data)

    def flush(self) -> None:
        for data in self.pending:
            self.socket.sent += data
        self.pending, self._tempDataLen = [], 0


class FakeProtocol:
    STATE_OPEN = 1
    _perMessageCompress = None

    def __init__(self, transport: FakeTransport) -> None:
        self.state = self.STATE_OPEN
        self.transport = transport
        self.closeHandshakeTimeout = 1


def frame(text: str) -> Frame:
    return Frame(text.encode(), is_binary=False)


def payloads(wire: bytes) -> list[bytes]:
    out = []
    while wire:
        length, start = wire[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(wire[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(wire[2:10], "big"), 10
        out.append(wire[start : start + length])
        wire = wire[start + length :]
    return out


def test_a_partial_socket_write_sends_the_rest_and_later_frames_through_twisted_in_order() -> None:
    sock = FakeSocket(accept=[5])
    transport = FakeTransport(sock)
    edge = DaphneEdge(FakeProtocol(transport), max_queue=10, on_overflow=lambda: None)
    for text in ["first", "second", "third"]:
        edge.write(frame(text))
    assert transport.pending  # the kernel took 5 bytes; the rest and what followed wait in Twisted
    transport.flush()
    edge.write(frame("fourth"))  # Twisted drained: straight to the socket again
    assert payloads(sock.sent) == [b"first", b"second", b"third", b"fourth"]


def test_past_the_high_water_mark_frames_queue_and_past_max_queue_the_connection_is_a_slow_consumer() -> None:
    transport = FakeTransport(FakeSocket(accept=[0]))
    overflows: list[int] = []
    edge = DaphneEdge(FakeProtocol(transport), max_queue=3, on_overflow=lambda: overflows.append(1))
    edge.write(Frame(b"x" * (DaphneEdge.HIGH_WATER_BYTES + 1), is_binary=True))  # all of it in Twisted
    for i in range(3):
        edge.write(frame(str(i)))
    assert edge.queued() == 3
    assert edge.is_open
    edge.write(frame("one too many"))
    assert overflows == [1]
    assert not edge.is_open
    assert edge.queued() == 0
    edge.write(frame("after"))  # a closed edge writes nothing
    assert overflows == [1]


def test_queued_frames_move_on_once_twisted_drains() -> None:
    sock = FakeSocket(accept=[0])
    transport = FakeTransport(sock)
    edge = DaphneEdge(FakeProtocol(transport), max_queue=10, on_overflow=lambda: None)
    edge.write(Frame(b"x" * (DaphneEdge.HIGH_WATER_BYTES + 1), is_binary=True))
    edge.write(frame("a"))
    edge.write(frame("b"))
    transport.flush()
    edge.write(frame("c"))
    transport.flush()
    assert payloads(sock.sent)[-3:] == [b"a", b"b", b"c"]


def test_the_asgi_writer_overflows_when_send_never_completes() -> None:
    async def scenario() -> tuple[list[int], AsgiEdge]:
        async def stuck_send(message: dict[str, Any]) -> None:
            await asyncio.Event().wait()

        overflows: list[int] = []
        edge = AsgiEdge(stuck_send, max_queue=2, on_overflow=lambda: overflows.append(1))
        for i in range(5):
            edge.write(frame(str(i)))
            await asyncio.sleep(0)
        return overflows, edge

    overflows, edge = asyncio.run(scenario())
    assert overflows == [1]
    assert not edge.is_open


def test_daphne_send_gets_the_direct_writer_and_anything_else_the_asgi_one() -> None:
    class Server:
        async def handle_reply(self, protocol: Any, message: Any) -> None: ...

    protocol = FakeProtocol(FakeTransport(FakeSocket([])))
    protocol.sendPreparedMessage = lambda message: None
    assert isinstance(make_edge(functools.partial(Server().handle_reply, protocol), 5, lambda: None), DaphneEdge)

    async def other() -> bool:
        async def send(message: Any) -> None: ...

        return isinstance(make_edge(send, 5, lambda: None), AsgiEdge)

    assert asyncio.run(other())


def test_behind_tls_frames_take_autobahn_and_the_tcp_buffer_still_bounds_the_queue() -> None:
    class TLSTransport:
        """Twisted's TLS wrapper: no socket of its own, the TCP transport underneath."""

        def __init__(self, tcp: FakeTransport) -> None:
            self.transport = tcp

    tcp = FakeTransport(FakeSocket(accept=[]))
    protocol = FakeProtocol(tcp)
    protocol.transport = TLSTransport(tcp)
    sent: list[Any] = []
    protocol.sendPreparedMessage = sent.append
    overflows: list[int] = []
    edge = DaphneEdge(protocol, max_queue=1, on_overflow=lambda: overflows.append(1))
    edge.write(frame("a"))
    assert len(sent) == 1
    tcp.write(b"x" * (DaphneEdge.HIGH_WATER_BYTES + 1))  # the client stopped reading
    edge.write(frame("b"))
    edge.write(frame("c"))
    assert overflows == [1]
