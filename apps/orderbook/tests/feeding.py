"""Test helper: drive a protocol with a recording's frames and REST answers, as the shell would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from apps.orderbook.domain.protocol import Fetch, Output, Send, VenueProtocol
from apps.orderbook.domain.recording import Recording, parse_recording


def load(path: Path) -> Recording:
    return parse_recording(path.read_text().splitlines())


def drive(
    protocol: VenueProtocol, rec: Recording, sink: Callable[[list[Output]], None], conn: str | None = None
) -> None:
    """Feed every recv frame of `conn` (default: the first); answer each Fetch once the recording has reached
    the time of its REST record."""
    pending: list[Fetch] = []

    def handle(outputs: list[Output]) -> None:
        pending.extend(o for o in outputs if isinstance(o, Fetch))
        sink([o for o in outputs if not isinstance(o, Fetch | Send)])

    handle(protocol.on_open(0))
    for frame in rec.connections[conn or rec.ws_conns()[0]].frames:
        for fetch in list(pending):
            answer = rec.http[fetch.path][0]
            if frame.ts_s >= answer.ts_s:
                pending.remove(fetch)
                handle(protocol.on_rest(fetch.key, 200, answer.body, int(answer.ts_s * 1e9)))
        handle(protocol.on_message(frame.text, int(frame.ts_s * 1e9)))
