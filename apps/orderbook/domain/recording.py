"""Recorded venue traffic (format 2 `.replay.jsonl`): parse it, group frames by connection, pace a replay.

A recording is one JSON object per line: a `header`, then `connect`, `send`, `recv` and `http` records
sorted by `ts` (the recorder's receive time, epoch seconds). `data` is kept as the exact text the venue
sent, because OKX and Kraken checksums are computed over those strings. `tag_frame` tells what a frame is
about (kind, instrument, snapshot/update) across venues. Reading the file and sleeping are the caller's
business: this module only turns lines into values and timestamps into delays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

FORMAT = 2


class RecordingError(ValueError):
    """The text is not a recording this module can read (bad JSON, wrong format, missing fields)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One server→client WebSocket text frame. `origin` is its index among the conn's recorded frames.

    Frames made up by a fault (an OKX keep-alive) have origin -1; a duplicate keeps its source's origin.
    """

    ts_s: float
    text: str
    origin: int = -1


@dataclass(frozen=True, slots=True)
class Connection:
    """One recorded WebSocket connection: where it went, what the client sent, what the venue answered."""

    conn: str  # "OKX.ws.1"
    addr: str  # "wss://ws.okx.com:8443/ws/v5/public"
    connect_ts_s: float
    sends: tuple[Frame, ...]
    frames: tuple[Frame, ...]

    @property
    def waits_for_subscribe(self) -> bool:
        """The client spoke first (a subscription): a replay waits for the client's first frame."""
        return bool(self.sends) and (not self.frames or self.sends[0].ts_s <= self.frames[0].ts_s)

    @property
    def start_ts_s(self) -> float:
        """The moment the venue starts answering: the subscription if there is one, else the connect."""
        return self.sends[0].ts_s if self.waits_for_subscribe else self.connect_ts_s


@dataclass(frozen=True, slots=True)
class HttpResponse:
    path_qs: str  # "/api/v3/depth?symbol=NKNUSDT&limit=1000"
    url: str
    ts_s: float
    body: str


@dataclass(frozen=True, slots=True)
class Recording:
    header: dict[str, Any]
    connections: dict[str, Connection]  # WebSocket conns, in the order of their `connect` records
    http: dict[str, tuple[HttpResponse, ...]] = field(default_factory=dict)  # path+query → responses in order

    @property
    def exchange(self) -> str:
        return str(self.header.get("exchange", ""))

    def ws_conns(self) -> list[str]:
        return list(self.connections)


def path_qs(url: str) -> str:
    """`https://api.binance.com/api/v3/depth?symbol=X&limit=1000` → `/api/v3/depth?symbol=X&limit=1000`."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def parse_recording(lines: Iterable[str]) -> Recording:
    """Parse the lines of a `.replay.jsonl` file. Blank lines are ignored; anything malformed raises."""
    header: dict[str, Any] | None = None
    connects: dict[str, tuple[str, float]] = {}
    sends: dict[str, list[Frame]] = {}
    recvs: dict[str, list[Frame]] = {}
    http: dict[str, list[HttpResponse]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _load(line, number)
        kind = record.get("t")
        if header is None:
            header = _check_header(record, number)
            continue
        if kind == "connect":
            connects.setdefault(_str(record, "conn", number), (str(record.get("addr", "")), _ts(record, number)))
        elif kind in ("send", "recv"):
            conn = _str(record, "conn", number)
            frames = sends if kind == "send" else recvs
            bucket = frames.setdefault(conn, [])
            bucket.append(Frame(_ts(record, number), _str(record, "data", number), len(bucket)))
        elif kind == "http":
            url = _str(record, "url", number)
            response = HttpResponse(path_qs(url), url, _ts(record, number), _str(record, "data", number))
            http.setdefault(response.path_qs, []).append(response)
        else:
            raise RecordingError(f"line {number}: unknown record type {kind!r}")
    if header is None:
        raise RecordingError("empty recording: no header line")
    connections = {
        conn: Connection(conn, addr, ts_s, tuple(sends.get(conn, ())), tuple(recvs.get(conn, ())))
        for conn, (addr, ts_s) in connects.items()
    }
    # A conn that received frames without a `connect` record still deserves a replay; it starts at its first send/recv.
    for conn in recvs.keys() - connects.keys():
        first = min(f.ts_s for f in [*sends.get(conn, ()), *recvs[conn]])
        connections[conn] = Connection(conn, "", first, tuple(sends.get(conn, ())), tuple(recvs[conn]))
    return Recording(header, connections, {key: tuple(value) for key, value in http.items()})


def pacing_delays_s(frames: Sequence[Frame], *, start_ts_s: float, speed: float | None) -> list[float]:
    """Seconds after the replay starts at which each frame is due: `(ts - start) / speed`.

    Offsets from one origin rather than gaps between frames, so a slow send does not push every later
    frame back. `speed` 1.0 is real time, 10 ten times faster; 0 or None means as fast as possible (all 0).
    Offsets never decrease, even if a fault put an older timestamp after a newer one.
    """
    if not speed:
        return [0.0] * len(frames)
    delays: list[float] = []
    latest = 0.0
    for frame in frames:
        latest = max(latest, (frame.ts_s - start_ts_s) / speed)
        delays.append(latest)
    return delays


@dataclass(frozen=True, slots=True)
class FrameTag:
    """What a frame is about, whatever the venue: kind of message, instrument, snapshot or update."""

    kind: str  # "depthUpdate", "books", "book", "l2update", "subscribe", ... ("" if unknown)
    instrument: str  # "NKNUSDT", "BTC-USDT", "XMR/USD" ("" if none)
    action: str = ""  # "snapshot", "update" or ""


def tag_frame(text: str) -> FrameTag:
    """Classify a frame of any recorded venue (Binance, OKX, Kraken v1/v2, Coinbase); unknown → empty tag."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return FrameTag("", "")
    if isinstance(message, list):
        return _tag_kraken_v1(message)
    if not isinstance(message, dict):
        return FrameTag("", "")
    if "event" in message:
        where = message.get("arg") or {}
        return FrameTag(str(message["event"]), str(where.get("instId") or message.get("pair") or ""))
    if isinstance(message.get("arg"), dict):  # OKX push
        arg = message["arg"]
        return FrameTag(str(arg.get("channel", "")), str(arg.get("instId", "")), str(message.get("action", "")))
    if "stream" in message and isinstance(message.get("data"), dict):  # Binance combined stream
        stream = str(message["stream"])
        name, _, kind = stream.partition("@")
        return _tag_binance(message["data"], kind.partition("@")[0], name.upper())
    if "e" in message or {"u", "b", "a"} <= message.keys():
        return _tag_binance(message, "bookTicker", "")
    if "channel" in message:  # Kraken v2, Coinbase Advanced Trade
        return _tag_channel(message)
    return FrameTag(str(message.get("type", "")), str(message.get("product_id", "")))


def _load(line: str, number: int) -> dict[str, Any]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordingError(f"line {number}: not JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise RecordingError(f"line {number}: not a JSON object")
    return record


def _check_header(record: dict[str, Any], number: int) -> dict[str, Any]:
    if record.get("t") != "header":
        raise RecordingError(f"line {number}: the first record must be the header")
    if record.get("format") != FORMAT:
        raise RecordingError(f"line {number}: recording format {record.get('format')!r}, expected {FORMAT}")
    return record


def _str(record: dict[str, Any], key: str, number: int) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise RecordingError(f"line {number}: {record.get('t')} record without a string {key!r}")
    return value


def _ts(record: dict[str, Any], number: int) -> float:
    value = record.get("ts")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordingError(f"line {number}: {record.get('t')} record without a numeric 'ts'")
    return float(value)


def _tag_kraken_v1(message: list[Any]) -> FrameTag:
    if len(message) < 3 or not isinstance(message[-2], str) or not isinstance(message[-1], str):
        return FrameTag("", "")
    kind = message[-2].partition("-")[0]  # "book-1000" → "book"
    if kind != "book":
        return FrameTag(kind, message[-1])
    is_snapshot = any(isinstance(part, dict) and ("as" in part or "bs" in part) for part in message[1:-2])
    return FrameTag(kind, message[-1], "snapshot" if is_snapshot else "update")


def _tag_binance(data: dict[str, Any], kind: str, instrument: str) -> FrameTag:
    return FrameTag(str(data.get("e") or kind), str(data.get("s") or instrument))


def _tag_channel(message: dict[str, Any]) -> FrameTag:
    items = message.get("data") or message.get("events")
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    instrument = first.get("symbol") or first.get("product_id") or ""
    return FrameTag(str(message["channel"]), str(instrument), str(message.get("type") or first.get("type") or ""))
