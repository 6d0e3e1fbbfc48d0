"""Test helpers: drive a protocol with a recording's frames and REST answers, as the shell would; wait for the hub."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from apps.orderbook.domain.protocol import Fetch, Output, Send, VenueProtocol
from apps.orderbook.domain.recording import Recording, parse_recording
from apps.orderbook.services.market import get_hub


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


def wait_for_hub(book: str, seq: int) -> None:
    """Until this process's hub has the book at `seq` (on Redis its thread receives events a moment later)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        view = get_hub().view(book, 1)
        if view is not None and view.seq >= seq:
            return
        time.sleep(0.02)
    raise AssertionError(f"hub never reached {book} seq {seq}")
