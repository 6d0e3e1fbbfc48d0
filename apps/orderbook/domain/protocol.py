"""The contract between a venue's pure protocol logic and the asyncio shell that does its I/O.

A protocol object is fed frames, REST bodies and clock ticks (time is a parameter) and answers with a
list of outputs: things for the shell to do (send, fetch, reconnect) and things for the platform
(book changes, staleness, trades, verification results). It never touches a socket or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .events import BookChange, BookStale, Trade


@dataclass(frozen=True, slots=True)
class Send:
    """Send this text frame on the WebSocket."""

    text: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """GET `path` (path and query, relative to the venue's REST base URL); answer with `on_rest(key, ...)`."""

    key: str
    path: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Drop the connection and open it again (after the shell's back-off)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Verified:
    """One integrity check ran: a checksum, a bookTicker cross-check, a continuity check. For metrics/tests."""

    symbol: str
    check: str  # "checksum", "book_ticker", ...
    is_ok: bool
    detail: str = ""


Output = Send | Fetch | Reconnect | BookChange | BookStale | Trade | Verified


class VenueProtocol(Protocol):
    venue: str

    def ws_path(self) -> str:
        """Path and query to open on the venue's WebSocket base URL."""
        ...

    def on_open(self, now_ns: int) -> list[Output]: ...

    def on_message(self, text: str, now_ns: int) -> list[Output]: ...

    def on_rest(self, key: str, status: int, body: str, now_ns: int) -> list[Output]: ...

    def on_close(self, now_ns: int) -> list[Output]: ...

    def on_tick(self, now_ns: int) -> list[Output]:
        """Called about once a second: keep-alives and timers."""
        ...
