"""Test harness: a recording served by the replay venue over loopback, read by the real connector shell."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from apps.orderbook.domain.events import BookEvent, InstrumentSpec
from apps.orderbook.domain.faults import FaultPlan
from apps.orderbook.domain.protocol import VenueProtocol
from apps.orderbook.domain.recording import parse_recording
from apps.orderbook.replay import ReplayVenue
from apps.orderbook.services.bus import InProcessBus
from apps.orderbook.services.publisher import FeedPublisher, Precision
from apps.orderbook.services.runner import VenueConnection


@dataclass
class LoopbackRun:
    publisher: FeedPublisher
    bus: InProcessBus
    protocols: dict[str, VenueProtocol]
    connections: dict[str, VenueConnection]
    venue: ReplayVenue
    events: list[BookEvent] = field(default_factory=list)
    stopped_at: int = 0  # len(events) when the harness stopped the connections (later ones are the shutdown's)

    def books(self) -> dict[str, list[BookEvent]]:
        """Each book's events up to the harness's stop."""
        out: dict[str, list[BookEvent]] = defaultdict(list)
        for event in self.events[: self.stopped_at]:
            out[event.book].append(event)
        return out

    def checks(self, check: str, *, ok: bool) -> int:
        return sum(n for (_, name, is_ok), n in self.publisher.checks.items() if name == check and is_ok == ok)


def replay(
    path: Path,
    venue: str,
    specs: list[InstrumentSpec],
    make_protocol: Callable[[str, list[InstrumentSpec]], VenueProtocol],
    *,
    conns: list[str] | None = None,
    faults: str = "",
    speed: float | None = 0,
    settle: Callable[[LoopbackRun], bool] | None = None,
    timeout_s: float = 30,
) -> LoopbackRun:
    """Serve the recording, connect one VenueConnection per conn, run until every frame is consumed."""
    recording = parse_recording(path.read_text().splitlines())
    plan = FaultPlan.parse(faults) if faults else FaultPlan()
    bus = InProcessBus(100_000)
    listings = {(venue, s.symbol): Precision(s.price_exp, s.size_exp) for s in specs}
    instruments = {s.symbol: Precision(s.price_exp, s.size_exp) for s in specs}
    publisher = FeedPublisher(bus, listings, instruments, time.time_ns)
    server = ReplayVenue(recording, speed=speed, faults=plan)
    run = LoopbackRun(publisher, bus, {}, {}, server)
    bus.subscribe(run.events.append)
    chosen = conns or recording.ws_conns()

    async def main() -> None:
        await server.start("127.0.0.1", 0)
        stop = asyncio.Event()
        tasks = []
        for conn in chosen:
            protocol = make_protocol(conn, specs)
            connection = VenueConnection(conn, protocol, server.ws_url(conn), server.http_url, publisher)
            run.protocols[conn], run.connections[conn] = protocol, connection
            tasks.append(asyncio.ensure_future(connection.run(stop)))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            # The last recorded frame served (on whichever connection): counts add up over reconnections.
            sent = all(server.served_origin(c) >= len(server.recording.connections[c].frames) - 1 for c in chosen)
            read = all(run.connections[c].messages >= server.stats.frames_sent[c] for c in chosen)
            if sent and read and (settle is None or settle(run)):
                break
        await asyncio.sleep(0.1)
        run.stopped_at = len(run.events)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()

    asyncio.run(main())
    return run
