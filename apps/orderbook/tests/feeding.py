"""Test helper: drive a protocol with a recording's frames and REST answers, as the shell would."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apps.orderbook.domain.protocol import Fetch, Output, Send, VenueProtocol


@dataclass
class Recording:
    records: list[dict[str, Any]]
    http: dict[str, tuple[float, str]] = field(default_factory=dict)  # path?query → (ts, body)

    @classmethod
    def load(cls, path: Path) -> Recording:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        rec = cls(records)
        for r in records:
            if r["t"] == "http":
                url = urlsplit(r["url"])
                rec.http[f"{url.path}?{url.query}"] = (r["ts"], r["data"])
        return rec

    def frames(self, conn: str | None = None) -> Iterator[dict[str, Any]]:
        for r in self.records:
            if r["t"] == "recv" and (conn is None or r["conn"] == conn):
                yield r


def drive(
    protocol: VenueProtocol, rec: Recording, sink: Callable[[list[Output]], None], conn: str | None = None
) -> None:
    """Feed every recv frame; answer each Fetch once the recording has reached its REST record's time."""
    pending: list[Fetch] = []

    def handle(outputs: list[Output]) -> None:
        pending.extend(o for o in outputs if isinstance(o, Fetch))
        sink([o for o in outputs if not isinstance(o, Fetch | Send)])

    handle(protocol.on_open(0))
    for frame in rec.frames(conn):
        for fetch in list(pending):
            ts, body = rec.http[fetch.path]
            if frame["ts"] >= ts:
                pending.remove(fetch)
                handle(protocol.on_rest(fetch.key, 200, body, int(ts * 1e9)))
        handle(protocol.on_message(frame["data"], int(frame["ts"] * 1e9)))
