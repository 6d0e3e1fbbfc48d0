"""Fault injection for replays: pure transformations of one connection's recorded frames, and the CLI plan.

Spec syntax (`manage.py replayvenue --faults SPEC`): faults separated by commas, applied in the order
written, each optionally limited to one recorded conn with `@CONN` (default: every WebSocket conn)::

    drop:SEL                       drop that frame (a Binance gap, an OKX/Coinbase hole)
    dup:SEL[:LATER]                send it again right after itself, or after LATER more frames matching
                                   KIND:INST (an old frame arriving late)
    corrupt:SEL                    nudge one size in that OKX `books` or Kraken v1 `book` frame so its
                                   checksum fails: a level that lands in the checksummed top; if the frame
                                   has none (most Kraken updates), the next update of that book that does
    okxseq[:INST[:KA[:RESET]]]     OKX `books`: add a running prevSeqId/seqId per instrument (snapshot
                                   prevSeqId -1), set checksum 0; insert a keep-alive (prevSeqId == seqId,
                                   empty sides) after INST's KA-th books frame, and make INST's RESET-th
                                   books frame a sequence reset (seqId < prevSeqId). 0 = none.
    kill:N[:TIMES]                 the server closes the connection abruptly (TCP close, no WebSocket
                                   close frame) after N frames, on the next TIMES connections to that conn
                                   (default 1); successive kill faults take successive connections

    SEL = KIND:INST:NTH            the NTH (from 1) frame of that kind and instrument, numbered as recorded
    KIND                           Binance `e` (depthUpdate, aggTrade, kline) or bookTicker; OKX channel
                                   (books, trades, tickers); Kraken v1 channel without depth (book, trade,
                                   ticker); Coinbase `type` (l2update, snapshot, match); an event frame's
                                   `event` (subscribe, heartbeat); `KIND.snapshot`/`KIND.update` narrows it;
                                   `*` is any frame
    INST                           the venue's spelling (NKNUSDT, BTC-USDT, XMR/USD), any case; `*` is any

Example: `drop:depthUpdate:NKNUSDT:5,dup:depthUpdate:NKNUSDT:7:3,kill:40@BINANCE.ws.1`.

Every NTH counts the conn's frames as recorded, whatever earlier faults removed or added. Because faults
apply in order, `okxseq,drop:books:BTC-USDT:9` leaves a visible seqId gap while `drop:...,okxseq` does not.
Each new connection replays its conn from the first frame; a killed one therefore restarts from the
beginning of that conn, as a venue's resubscription would (with a fresh snapshot).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from .book import ASK, BID, OrderBook, TextLevel
from .recording import Frame, FrameTag, tag_frame

FramePredicate = Callable[[Frame], bool]

FIRST_SEQ_ID = 10_000_000  # each instrument's running seqId starts a million above the previous one's
RESET_SEQ_ID = 100  # what a sequence reset drops to: below every running seqId
_BOOK_EXP = 18  # fixed-point exponent for rebuilding books: above any venue's decimals
_CHECKSUM = re.compile(r'"checksum":-?[0-9]+')


class FaultError(ValueError):
    """A fault cannot be applied: no such frame, or the frame is not of a kind the fault understands."""


class FaultSpecError(FaultError):
    """The `--faults` text does not follow the syntax in this module's docstring."""


@dataclass(frozen=True, slots=True)
class Selector:
    """`KIND[.ACTION]:INST:NTH` as a predicate (kind, action and instrument; NTH is for the caller)."""

    kind: str
    instrument: str
    nth: int
    action: str = ""

    def __call__(self, frame: Frame) -> bool:
        tag = tag_frame(frame.text)
        return (
            self.kind in ("*", tag.kind)
            and (not self.action or self.action == tag.action)
            and (self.instrument == "*" or self.instrument.casefold() == tag.instrument.casefold())
        )

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.action}" if self.action else self.kind
        return f"{kind}:{self.instrument}:{self.nth}"


def find_nth(frames: Sequence[Frame], predicate: FramePredicate, nth: int) -> int:
    """Index of the nth (from 1) frame matching; FaultError if there are fewer."""
    seen = 0
    for index, frame in enumerate(frames):
        if predicate(frame):
            seen += 1
            if seen == nth:
                return index
    raise FaultError(f"only {seen} matching frame(s), no #{nth}")


def drop(frames: Sequence[Frame], predicate: FramePredicate, nth: int) -> list[Frame]:
    index = find_nth(frames, predicate, nth)
    return [*frames[:index], *frames[index + 1 :]]


def duplicate(frames: Sequence[Frame], predicate: FramePredicate, nth: int, *, later: int = 0) -> list[Frame]:
    """Send the nth matching frame again after the (nth + later)-th matching one (0: right after itself).

    The copy takes the timestamp of the frame it follows, so pacing sends it without a pause.
    """
    source = find_nth(frames, predicate, nth)
    after = find_nth(frames, predicate, nth + later)
    copy = replace(frames[source], ts_s=frames[after].ts_s)
    return [*frames[: after + 1], copy, *frames[after + 1 :]]


def corrupt_level(frames: Sequence[Frame], predicate: FramePredicate, nth: int) -> list[Frame]:
    """Change one size in the nth matching OKX `books` or Kraken v1 `book` frame; the rest stays verbatim.

    The level chosen is one that the frame leaves in the checksummed top (OKX 25, Kraken 10), so the
    frame's own checksum must fail. Most Kraken depth-1000 updates touch only deeper levels (and a Kraken
    snapshot carries no checksum): then the first later checksummed update of the same book is corrupted
    instead. The size keeps its format and stays non-zero: its last digit moves by one.
    """
    index = find_nth(frames, predicate, nth)
    tag = tag_frame(frames[index].text)
    if tag.kind == "books" and tag.action:
        apply, top_n = _apply_okx, 25
    elif tag.kind == "book" and tag.action and frames[index].text.startswith("["):
        apply, top_n = _apply_kraken_v1, 10
    else:
        raise FaultError(f"frame #{nth} ({tag.kind} {tag.action}) is no OKX books or Kraken v1 book frame")
    book = _rebuild(frames[:index], tag, apply)
    for position in range(index, len(frames)):
        frame = frames[position]
        other = tag_frame(frame.text)
        if (other.kind, other.instrument) != (tag.kind, tag.instrument) or not other.action:
            continue
        message = orjson.loads(frame.text)
        apply(book, message)
        if tag.kind == "book" and other.action != "update":
            continue  # a Kraken snapshot carries no checksum
        for side_key, side, occurrence, price, size in _levels(message):
            if (price, size) in book.top_text(side, top_n) and Decimal(size) != 0:
                text = _replace_size(frame.text, side_key, (price, size), occurrence, _nudge(size))
                return [*frames[:position], replace(frame, text=text), *frames[position + 1 :]]
    raise FaultError(f"no {tag.kind} update of {tag.instrument} from #{nth} on changes the checksummed top {top_n}")


def okx_synthesize_seq(
    frames: Sequence[Frame],
    *,
    keepalive_after: int | None = None,
    reset_at: int | None = None,
    first_seq_id: int = FIRST_SEQ_ID,
) -> list[Frame]:
    """Give every OKX `books` push a running `prevSeqId`/`seqId` per instrument and `checksum: 0`.

    A snapshot has prevSeqId -1; each update's seqId grows by its number of levels (at least 1), so a
    connector cannot assume +1. `keepalive_after` and `reset_at` are indices into `frames` of books
    pushes: a keep-alive (prevSeqId == seqId, empty sides) is inserted after the first, and the second
    gets seqId RESET_SEQ_ID, below its prevSeqId, as after an OKX maintenance.
    """
    for index in (keepalive_after, reset_at):
        if index is not None and not _is_okx_books(frames[index]):
            raise FaultError(f"frame {index} is not an OKX books push")
    last_seq: dict[str, int] = {}
    result: list[Frame] = []
    for index, frame in enumerate(frames):
        if not _is_okx_books(frame):
            result.append(frame)
            continue
        message = orjson.loads(frame.text)
        tag = tag_frame(frame.text)
        if tag.instrument not in last_seq:
            last_seq[tag.instrument] = first_seq_id + 1_000_000 * len(last_seq)
        data = message["data"][0]
        prev = -1 if tag.action == "snapshot" else last_seq[tag.instrument]
        seq = last_seq[tag.instrument] + max(1, len(data.get("asks", [])) + len(data.get("bids", [])))
        if index == reset_at:
            if prev == -1:
                raise FaultError(f"frame {index} is a snapshot: a sequence reset must be an update")
            seq = RESET_SEQ_ID
        last_seq[tag.instrument] = seq
        result.append(replace(frame, text=_with_seq(frame.text, prev, seq)))
        if index == keepalive_after:
            result.append(Frame(frame.ts_s, _okx_keepalive(message["arg"], str(data.get("ts", "")), seq)))
    return result


@dataclass(frozen=True, slots=True)
class Drop:
    selector: Selector
    conn: str | None = None


@dataclass(frozen=True, slots=True)
class Duplicate:
    selector: Selector
    later: int = 0
    conn: str | None = None


@dataclass(frozen=True, slots=True)
class Corrupt:
    selector: Selector
    conn: str | None = None


@dataclass(frozen=True, slots=True)
class OkxSeq:
    instrument: str = "*"
    keepalive_after: int = 0  # nth books push of `instrument`; 0 = no keep-alive
    reset_at: int = 0  # nth books push of `instrument`; 0 = no reset
    conn: str | None = None


@dataclass(frozen=True, slots=True)
class Kill:
    after_frames: int
    times: int = 1
    conn: str | None = None


Fault = Drop | Duplicate | Corrupt | OkxSeq | Kill


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults of one replay, in the order they apply. `FaultPlan()` injects nothing."""

    faults: tuple[Fault, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        return cls(tuple(_parse_fault(item.strip()) for item in spec.split(",") if item.strip()))

    def __str__(self) -> str:
        return ",".join(_describe(fault) for fault in self.faults)

    def apply_all(self, frames_by_conn: Mapping[str, Sequence[Frame]]) -> dict[str, list[Frame]]:
        """Each conn's frames with the frame faults applied. A fault that fits no conn is an error."""
        result = {conn: list(frames) for conn, frames in frames_by_conn.items()}
        for fault in self.faults:
            if fault.conn is not None and fault.conn not in result:
                raise FaultError(f"{_describe(fault)}: no WebSocket conn {fault.conn!r} in the recording")
            if isinstance(fault, Kill):
                continue  # the server's business, connection by connection
            conns = [fault.conn] if fault.conn is not None else list(result)
            errors = []
            for conn in conns:
                try:
                    result[conn] = _apply(fault, frames_by_conn[conn], result[conn])
                except FaultError as exc:
                    errors.append(f"{conn}: {exc}")
            if len(errors) == len(conns):
                raise FaultError(f"{_describe(fault)}: " + "; ".join(errors))
        return result

    def kill_after(self, conn: str, connection_index: int) -> int | None:
        """Frames to send before killing the conn's `connection_index`-th connection (from 0), or None.

        Kills take successive connections in the order written: `kill:40:2,kill:100` kills the first two
        after 40 frames and the third after 100.
        """
        schedule = [
            f.after_frames
            for f in self.faults
            if isinstance(f, Kill) and f.conn in (None, conn)
            for _ in range(f.times)
        ]
        return schedule[connection_index] if connection_index < len(schedule) else None


def _apply(fault: Fault, recorded: Sequence[Frame], frames: list[Frame]) -> list[Frame]:
    """Resolve the fault's frames in the recorded numbering, then act on the current (faulted) list."""
    if isinstance(fault, OkxSeq):
        if not any(map(_is_okx_books, frames)):
            raise FaultError("no OKX books push")
        return okx_synthesize_seq(
            frames,
            keepalive_after=_current_index(recorded, frames, fault.instrument, fault.keepalive_after),
            reset_at=_current_index(recorded, frames, fault.instrument, fault.reset_at),
        )
    assert not isinstance(fault, Kill)
    source = recorded[find_nth(recorded, fault.selector, fault.selector.nth)].origin
    if isinstance(fault, Drop):
        return drop(frames, _has_origin(source), 1)
    if isinstance(fault, Corrupt):
        return corrupt_level(frames, _has_origin(source), 1)
    if not fault.later:
        return duplicate(frames, _has_origin(source), 1)
    after = recorded[find_nth(recorded, fault.selector, fault.selector.nth + fault.later)].origin
    return duplicate(frames, _has_origin(source, after), 1, later=1)


def _current_index(recorded: Sequence[Frame], frames: Sequence[Frame], instrument: str, nth: int) -> int | None:
    if not nth:
        return None
    origin = recorded[find_nth(recorded, Selector("books", instrument, nth), nth)].origin
    return find_nth(frames, _has_origin(origin), 1)


def _has_origin(*origins: int) -> FramePredicate:
    return lambda frame: frame.origin in origins


def _parse_fault(item: str) -> Fault:
    body, at, conn_text = item.partition("@")
    conn = conn_text.strip() if at else None
    if at and not conn:
        raise FaultSpecError(f"{item!r}: '@' must be followed by a conn name")
    name, *args = body.strip().split(":")
    try:
        if name in ("drop", "corrupt") and len(args) == 3:
            return (Drop if name == "drop" else Corrupt)(_selector(args), conn=conn)
        if name == "dup" and len(args) in (3, 4):
            return Duplicate(_selector(args[:3]), _count(args[3], 0) if len(args) == 4 else 0, conn=conn)
        if name == "okxseq" and len(args) <= 3:
            instrument = args[0].strip() if args else "*"
            numbers = [*(_count(a, 0) for a in args[1:]), 0, 0]
            if instrument == "*" and any(numbers):
                raise FaultSpecError("a keep-alive or reset needs an instrument, not '*'")
            return OkxSeq(instrument, numbers[0], numbers[1], conn=conn)
        if name == "kill" and len(args) in (1, 2):
            return Kill(_count(args[0], 0), _count(args[1], 1) if len(args) == 2 else 1, conn=conn)
    except FaultSpecError as exc:
        raise FaultSpecError(f"{item!r}: {exc}") from exc
    raise FaultSpecError(
        f"{item!r}: expected drop:SEL, dup:SEL[:LATER], corrupt:SEL, okxseq[:INST[:KA[:RESET]]] or kill:N[:TIMES]"
    )


def _selector(args: Sequence[str]) -> Selector:
    kind, instrument, nth = (a.strip() for a in args)
    kind, _, action = kind.rpartition(".") if kind.endswith((".snapshot", ".update")) else (kind, "", "")
    if not kind or not instrument:
        raise FaultSpecError("KIND and INST must not be empty (use '*' for any)")
    return Selector(kind, instrument, _count(nth, 1), action)


def _count(text: str, minimum: int) -> int:
    if not text.strip().isdigit() or int(text) < minimum:
        raise FaultSpecError(f"{text!r} is not a whole number >= {minimum}")
    return int(text)


def _describe(fault: Fault) -> str:
    where = f"@{fault.conn}" if fault.conn is not None else ""
    if isinstance(fault, Drop):
        return f"drop:{fault.selector}{where}"
    if isinstance(fault, Corrupt):
        return f"corrupt:{fault.selector}{where}"
    if isinstance(fault, Duplicate):
        return f"dup:{fault.selector}:{fault.later}{where}"
    if isinstance(fault, OkxSeq):
        return f"okxseq:{fault.instrument}:{fault.keepalive_after}:{fault.reset_at}{where}"
    return f"kill:{fault.after_frames}:{fault.times}{where}"


def _is_okx_books(frame: Frame) -> bool:
    tag = tag_frame(frame.text)
    return tag.kind == "books" and tag.action in ("snapshot", "update")


def _rebuild(frames: Sequence[Frame], tag: FrameTag, apply: Callable[[OrderBook, Any], None]) -> OrderBook:
    """The instrument's book after the last of `frames`, from its snapshot and updates among them."""
    book = OrderBook(_BOOK_EXP, _BOOK_EXP)
    for frame in frames:
        other = tag_frame(frame.text)
        if other.kind == tag.kind and other.instrument == tag.instrument and other.action:
            apply(book, orjson.loads(frame.text))
    return book


def _apply_okx(book: OrderBook, message: Any) -> None:
    data = message["data"][0]
    bids = [(level[0], level[1]) for level in data.get("bids", [])]
    asks = [(level[0], level[1]) for level in data.get("asks", [])]
    if message.get("action") == "snapshot":
        book.load(bids, asks)
        return
    for side, levels in ((BID, bids), (ASK, asks)):
        for price, size in levels:
            book.apply(side, price, size)


def _apply_kraken_v1(book: OrderBook, message: Any) -> None:
    parts = [part for part in message[1:-2] if isinstance(part, dict)]
    if any("as" in part or "bs" in part for part in parts):
        book.clear()
    for part in parts:
        for key, levels in part.items():
            if key in ("a", "as", "b", "bs"):
                side = ASK if key.startswith("a") else BID
                for level in levels:
                    book.apply(side, level[0], level[1])
    depth = int(message[-2].partition("-")[2] or 10)
    for side in (BID, ASK):
        book.truncate(side, depth)


def _levels(message: Any) -> list[tuple[str, str, int, str, str]]:
    """(key in the text, side, occurrence of the same text in that side, price, size) of each final entry.

    Only an entry that is the last one for its price in its side decides the book, so only those count.
    """
    if isinstance(message, dict):
        data = message["data"][0]
        sides = [("asks", ASK, data.get("asks", [])), ("bids", BID, data.get("bids", []))]
    else:
        parts = [part for part in message[1:-2] if isinstance(part, dict)]
        sides = [(key, ASK if key == "a" else BID, part[key]) for part in parts for key in ("a", "b") if key in part]
    result = []
    for key, side, levels in sides:
        texts: list[TextLevel] = [(level[0], level[1]) for level in levels]
        for index, (price, size) in enumerate(texts):
            if all(later[0] != price for later in texts[index + 1 :]):
                result.append((key, side, texts[:index].count((price, size)), price, size))
    return result


def _replace_size(text: str, side_key: str, level: TextLevel, occurrence: int, new_size: str) -> str:
    """Swap the size of the `occurrence`-th `[price, size, ...]` of that side, leaving every other byte."""
    price, size = level
    position = text.index(f'"{side_key}":[')
    needle = f'["{price}","{size}"'
    for _ in range(occurrence + 1):
        position = text.index(needle, position + 1)
    return f'{text[:position]}["{price}","{new_size}"{text[position + len(needle) :]}'


def _nudge(size: str) -> str:
    """Move the last digit by one (9 → 8, else +1): same format, still non-zero, a different checksum."""
    try:
        Decimal(size)
    except InvalidOperation as exc:
        raise FaultError(f"not a decimal size: {size!r}") from exc
    last = int(size[-1])
    return size[:-1] + str(8 if last == 9 else last + 1)


def _with_seq(text: str, prev_seq: int, seq: int) -> str:
    if '"seqId"' in text:
        raise FaultError("the frame already carries a seqId")
    fields = f'"checksum":0,"prevSeqId":{prev_seq},"seqId":{seq}'
    result, count = _CHECKSUM.subn(fields, text)
    if count != 1:
        raise FaultError(f"expected one checksum field in an OKX books push, found {count}")
    return result


def _okx_keepalive(arg: dict[str, Any], ts_ms: str, seq: int) -> str:
    data = {"asks": [], "bids": [], "ts": ts_ms, "checksum": 0, "prevSeqId": seq, "seqId": seq}
    return orjson.dumps({"arg": arg, "action": "update", "data": [data]}).decode()
