"""OKX v5 public WebSocket: `books` kept continuous by seqId, verified by checksum, plus `trades`.

Decisions (the wire rules are in docs/venue-protocols.md, OKX v5):

- Continuity: an update is applied only if its prevSeqId equals the last seqId. That one rule also admits
  the keep-alive (prevSeqId == seqId, empty sides) and the sequence reset after maintenance (seqId <
  prevSeqId). A frame with prevSeqId <= seqId <= last seqId (and prevSeqId != last) is a duplicate or a
  replay of something already applied: it is ignored, not treated as a gap. A reset is told apart from such
  a frame because its prevSeqId is the last seqId; a duplicated reset frame, or a pre-maintenance frame
  replayed after a reset, cannot be placed and counts as a gap (the safe side). Anything else is a gap.
- Without seqId/prevSeqId (before 2023, like the 2022 recording) an update is accepted and the checksum is
  the only integrity check; there a duplicate is harmless because sizes are absolute, while an older replay
  fails the checksum. `checksum: 0` means absent (OKX sends 0 since June 2026).
- A gap, a checksum failure, a crossed book or a malformed books message makes the book stale (BookStale
  if it was live). With the WS snapshot the instrument's books channel is unsubscribed and subscribed again
  (the connection and the other instruments stay up) and its messages are ignored until the new snapshot.
  With the REST bootstrap the stream itself is intact, so it buffers and fetches again instead.
  More than MAX_RESYNCS_IN_A_ROW resyncs without a clean update in between → Reconnect.
- REST bootstrap (use_ws_snapshot=False): buffer updates, GET /api/v5/market/books (its `seqId` has no
  prevSeqId: it is a snapshot), drop buffered updates already in it, then the first kept update must link:
  prevSeqId == snapshot seqId, or prevSeqId < snapshot seqId < seqId. The second case is exact because a
  `books` message carries the final size of every level changed over its whole span (Binance's
  U <= id + 1 <= u); REST refreshes every 50 ms and `books` pushes every 100 ms, so it is common. With an
  empty buffer the book goes live at once and the next update may straddle the same way. A REST snapshot
  without seqId cannot be placed in the stream and is fetched again. A WS snapshot, if one still
  arrives, is taken as well.
- Keep-alive: the text `ping` after 25 s without any frame; no frame within 30 s of it → Reconnect. A book
  not synchronised within 15 s of subscribing or fetching → Reconnect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from ..book import ASK, BID, Level, OrderBook, TextLevel
from ..checksum import okx_book_checksum
from ..events import BookChange, BookStale, InstrumentSpec, Trade
from ..fixedpoint import PrecisionError, to_units
from ..protocol import Fetch, Output, Reconnect, Send, Verified

MS = 1_000_000
SECOND = 1_000_000_000
PING_AFTER_NS = 25 * SECOND
PONG_TIMEOUT_NS = 30 * SECOND
SYNC_TIMEOUT_NS = 15 * SECOND
MAX_RESYNCS_IN_A_ROW = 5
MAX_SNAPSHOT_ATTEMPTS = 5
MAX_BUFFER = 10_000
REST_DEPTH = 400

APPLY, OLD, GAP = "apply", "old", "gap"
# What OKX writes for a price or a size. Checked before to_units, which also takes "", "1_000", " 1" and
# exponents ("1e99999" costs seconds and a 300 kbit integer).
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_MILLISECONDS = re.compile(r"[0-9]{1,16}")


class _Malformed(ValueError):
    """A books message or REST body without the documented shape."""


@dataclass(frozen=True, slots=True)
class _BookMessage:
    bids: list[TextLevel]
    asks: list[TextLevel]
    seq_ids: tuple[int, int] | None  # (prevSeqId, seqId); None before OKX had them
    checksum: int  # 0 = absent
    exchange_ts_ns: int | None

    @property
    def seq(self) -> int | None:
        return self.seq_ids[1] if self.seq_ids is not None else None


@dataclass
class _Instrument:
    spec: InstrumentSpec
    book: OrderBook
    is_synced: bool = False
    last_seq: int | None = None
    may_bridge: bool = False  # right after a REST snapshot: the next update may straddle it
    waiting_since_ns: int | None = None  # subscribed or fetching, not yet synchronised
    buffer: list[_BookMessage] = field(default_factory=list)  # REST bootstrap only
    fetch_no: int = 0
    attempts: int = 0  # REST snapshots in a row that did not synchronise
    resyncs: int = 0  # resyncs since the last update that applied cleanly


class OKXProtocol:
    def __init__(
        self,
        instruments: list[InstrumentSpec],
        *,
        venue: str = "okx",
        channel: str = "books",
        use_ws_snapshot: bool = True,
    ) -> None:
        self.venue = venue
        self.channel = channel
        self.use_ws_snapshot = use_ws_snapshot
        self._instruments = {s.venue_symbol: _Instrument(s, OrderBook(s.price_exp, s.size_exp)) for s in instruments}
        self._is_open = False
        self._last_frame_ns = 0
        self._ping_sent_ns: int | None = None

    def ws_path(self) -> str:
        return "/ws/v5/public"

    def book(self, venue_symbol: str) -> OrderBook:
        return self._instruments[venue_symbol].book

    def on_open(self, now_ns: int) -> list[Output]:
        self._is_open, self._last_frame_ns, self._ping_sent_ns = True, now_ns, None
        args: list[dict[str, str]] = []
        for name in self._instruments:
            args += [{"channel": self.channel, "instId": name}, {"channel": "trades", "instId": name}]
        outputs: list[Output] = [Send(_op("subscribe", args))]
        for state in self._instruments.values():
            _forget(state, now_ns)
            state.resyncs = 0
            if not self.use_ws_snapshot:
                outputs += self._fetch(state)
        return outputs

    def on_close(self, now_ns: int) -> list[Output]:
        self._is_open, self._ping_sent_ns = False, None
        outputs: list[Output] = []
        for state in self._instruments.values():
            if state.is_synced:
                outputs.append(BookStale(self.venue, state.spec.symbol, "disconnected", now_ns))
            _forget(state, None)
        return outputs

    def on_tick(self, now_ns: int) -> list[Output]:
        if not self._is_open:
            return []
        for name, state in self._instruments.items():
            if state.waiting_since_ns is not None and now_ns - state.waiting_since_ns >= SYNC_TIMEOUT_NS:
                return self._reconnect(f"{name}: book not synchronised within {SYNC_TIMEOUT_NS // SECOND} s")
        if self._ping_sent_ns is not None:
            if now_ns - self._ping_sent_ns >= PONG_TIMEOUT_NS:
                return self._reconnect(f"no pong within {PONG_TIMEOUT_NS // SECOND} s of a ping")
            return []
        if now_ns - self._last_frame_ns >= PING_AFTER_NS:
            self._ping_sent_ns = now_ns
            return [Send("ping")]
        return []

    def on_message(self, text: str, now_ns: int) -> list[Output]:
        # Any frame proves the connection alive, not only the pong.
        self._last_frame_ns, self._ping_sent_ns = now_ns, None
        if text == "pong":
            return []
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []  # a lost books message still shows up, as a seqId gap or a checksum failure
        if not isinstance(message, dict):
            return []
        if "event" in message:
            return self._on_event(message)
        arg = message.get("arg")
        if not isinstance(arg, dict):
            return []
        state = self._instruments.get(str(arg.get("instId")))
        if state is None:
            return []
        channel, data = arg.get("channel"), message.get("data")
        if channel == self.channel:
            return self._on_books(state, message.get("action"), data, now_ns)
        if channel == "trades" and isinstance(data, list):
            return self._on_trades(state, data, now_ns)
        return []

    def on_rest(self, key: str, status: int, body: str, now_ns: int) -> list[Output]:
        name, _, fetch_no = key.rpartition("#")
        state = self._instruments.get(name)
        if not self._is_open or state is None or str(state.fetch_no) != fetch_no or state.is_synced:
            return []  # an answer that a later fetch, a WS snapshot or a disconnect replaced
        if status != 200:
            return self._refetch(state, f"snapshot HTTP {status}")
        try:
            snapshot = _parse_rest(body)
        except ValueError as exc:  # orjson.JSONDecodeError and _Malformed
            return self._refetch(state, f"bad snapshot: {exc}")
        return self._sync_from_rest(state, snapshot, now_ns)

    # --- events and books ----------------------------------------------------------------------------

    def _on_event(self, message: dict[str, Any]) -> list[Output]:
        event = message.get("event")
        if event == "error":
            return self._reconnect(f"OKX error {message.get('code')}: {message.get('msg')}")
        if event == "notice":  # 64008: the connection will soon be closed for a service upgrade
            return self._reconnect(f"OKX notice {message.get('code')}: {message.get('msg')}")
        return []  # subscribe / unsubscribe acknowledgements

    def _on_books(self, state: _Instrument, action: Any, data: Any, now_ns: int) -> list[Output]:
        if not isinstance(data, list) or not data or action not in ("snapshot", "update"):
            return self._resync(state, "unexpected books message", now_ns) if state.is_synced else []
        outputs: list[Output] = []
        for item in data:
            if action == "snapshot":
                outputs += self._on_snapshot(state, item, now_ns)
            else:
                outputs += self._on_update(state, item, now_ns)
        return outputs

    def _on_snapshot(self, state: _Instrument, item: Any, now_ns: int) -> list[Output]:
        try:
            message = _parse_book(item)
            state.book.load(message.bids, message.asks)
        except ValueError as exc:  # _Malformed and PrecisionError
            return self._resync(state, f"bad snapshot: {exc}", now_ns)
        checks, failure = self._check(state, message)
        if failure:
            return checks + self._resync(state, failure, now_ns)
        _go_live(state, message.seq, may_bridge=False)
        return [*checks, self._reset(state, message.exchange_ts_ns, now_ns)]

    def _on_update(self, state: _Instrument, item: Any, now_ns: int) -> list[Output]:
        if not state.is_synced:
            if not self.use_ws_snapshot:
                _buffer(state, item)
            return []  # with the WS snapshot: ignored until the new snapshot
        try:
            message = _parse_book(item)
        except _Malformed as exc:
            return self._resync(state, f"bad update: {exc}", now_ns)
        if message.seq_ids is not None and state.last_seq is not None:
            link = _link(state.last_seq, message.seq_ids, may_bridge=state.may_bridge)
            if link == OLD:
                return []
            if link == GAP:
                reason = f"gap: prevSeqId={message.seq_ids[0]} after seqId={state.last_seq}"
                return self._resync(state, reason, now_ns, keep=message)
        try:
            bids, asks = _apply(state.book, message)
        except PrecisionError as exc:
            return self._resync(state, f"bad update: {exc}", now_ns)
        checks, failure = self._check(state, message)
        if failure:
            return checks + self._resync(state, failure, now_ns)
        state.last_seq, state.may_bridge, state.resyncs = message.seq, False, 0
        outputs: list[Output] = list(checks)
        if bids or asks:
            exchange_ts_ns, symbol = message.exchange_ts_ns, state.spec.symbol
            outputs.append(BookChange(self.venue, symbol, bids, asks, False, exchange_ts_ns, now_ns, message.seq))
        return outputs

    def _sync_from_rest(self, state: _Instrument, snapshot: _BookMessage, now_ns: int) -> list[Output]:
        try:
            state.book.load(snapshot.bids, snapshot.asks)
        except PrecisionError as exc:
            return self._refetch(state, f"bad snapshot: {exc}")
        outputs, failure = self._check(state, snapshot)
        assert snapshot.seq is not None
        last, may_bridge, exchange_ts_ns = snapshot.seq, True, snapshot.exchange_ts_ns
        for i, message in enumerate(state.buffer):
            if failure:
                break
            assert message.seq_ids is not None  # _buffer keeps only messages with seqIds
            link = _link(last, message.seq_ids, may_bridge=may_bridge)
            if link == OLD:
                continue  # already in the snapshot
            if link == GAP:
                state.buffer = state.buffer[i:]  # a newer snapshot may still link to these
                where = "snapshot older than the buffered updates" if may_bridge else "gap inside the buffer"
                return self._refetch(state, f"{where}: prevSeqId={message.seq_ids[0]} after seqId={last}")
            try:
                _apply(state.book, message)
            except PrecisionError as exc:
                failure = f"bad update: {exc}"
                break
            checks, failure = self._check(state, message)
            outputs += checks
            last, may_bridge, exchange_ts_ns = message.seq_ids[1], False, message.exchange_ts_ns
        if failure:
            state.buffer = []
            return outputs + self._refetch(state, failure)
        _go_live(state, last, may_bridge=may_bridge)
        return [*outputs, self._reset(state, exchange_ts_ns, now_ns)]

    def _check(self, state: _Instrument, message: _BookMessage) -> tuple[list[Output], str]:
        """Integrity after applying: OKX's checksum when it sent one, and an uncrossed book. "" = passed."""
        symbol = state.spec.symbol
        checks: list[Output] = []
        if message.checksum:
            actual = okx_book_checksum(state.book)
            if actual != message.checksum:
                detail = f"checksum {actual} != {message.checksum}"
                return [Verified(symbol, "checksum", False, detail)], detail
            checks.append(Verified(symbol, "checksum", True))
        if state.book.is_crossed():
            return checks, "crossed book"
        return checks, ""

    def _reset(self, state: _Instrument, exchange_ts_ns: int | None, now_ns: int) -> BookChange:
        book = state.book
        return BookChange(
            self.venue,
            state.spec.symbol,
            tuple(book.top(BID)),
            tuple(book.top(ASK)),
            True,
            exchange_ts_ns,
            now_ns,
            state.last_seq,
        )

    def _resync(
        self, state: _Instrument, reason: str, now_ns: int, *, keep: _BookMessage | None = None
    ) -> list[Output]:
        """Stale (if it was live), empty, and a new snapshot requested; `keep` starts the REST buffer."""
        outputs: list[Output] = []
        if state.is_synced:
            outputs.append(BookStale(self.venue, state.spec.symbol, reason, now_ns))
        _forget(state, now_ns)
        state.resyncs += 1
        name = state.spec.venue_symbol
        if state.resyncs > MAX_RESYNCS_IN_A_ROW:
            return outputs + self._reconnect(f"{name}: {reason}; {state.resyncs} resyncs in a row")
        if self.use_ws_snapshot:
            args = [{"channel": self.channel, "instId": name}]
            return [*outputs, Send(_op("unsubscribe", args)), Send(_op("subscribe", args))]
        if keep is not None:
            state.buffer.append(keep)
        return outputs + self._fetch(state)

    def _refetch(self, state: _Instrument, reason: str) -> list[Output]:
        state.attempts += 1
        if state.attempts > MAX_SNAPSHOT_ATTEMPTS:
            name = state.spec.venue_symbol
            return self._reconnect(f"{name}: {reason}; {state.attempts} snapshots in a row")
        return self._fetch(state)

    def _fetch(self, state: _Instrument) -> list[Output]:
        state.fetch_no += 1
        name = state.spec.venue_symbol
        return [Fetch(f"{name}#{state.fetch_no}", f"/api/v5/market/books?instId={name}&sz={REST_DEPTH}")]

    def _reconnect(self, reason: str) -> list[Output]:
        self._is_open = False  # quiet until the shell reopens: one Reconnect, not one per tick
        return [Reconnect(reason)]

    # --- trades --------------------------------------------------------------------------------------

    def _on_trades(self, state: _Instrument, data: list[Any], now_ns: int) -> list[Output]:
        spec = state.spec
        outputs: list[Output] = []
        for item in data:
            try:
                side, price, qty = item["side"], item["px"], item["sz"]
                if side not in ("buy", "sell") or not (_is_decimal(price) and _is_decimal(qty)):
                    continue
                trade = Trade(
                    venue=self.venue,
                    symbol=spec.symbol,
                    trade_id=str(item["tradeId"]),
                    price=to_units(price, spec.price_exp),
                    qty=to_units(qty, spec.size_exp),
                    aggressor=side,  # OKX's `side` is the taker's
                    exchange_ts_ns=int(item["ts"]) * MS,
                    receive_ts_ns=now_ns,
                )
            except (KeyError, TypeError, ValueError):  # ValueError covers PrecisionError
                continue
            outputs.append(trade)
        return outputs


def _link(last_seq: int, seq_ids: tuple[int, int], *, may_bridge: bool) -> str:
    prev, seq = seq_ids
    if prev == last_seq:
        return APPLY  # also the keep-alive (seq == prev) and the reset after maintenance (seq < prev)
    if prev <= seq <= last_seq:
        return OLD
    if may_bridge and prev < last_seq < seq:
        return APPLY
    return GAP


def _forget(state: _Instrument, waiting_since_ns: int | None) -> None:
    state.book.clear()
    state.is_synced, state.last_seq, state.may_bridge = False, None, False
    state.buffer, state.attempts = [], 0
    state.waiting_since_ns = waiting_since_ns


def _go_live(state: _Instrument, last_seq: int | None, *, may_bridge: bool) -> None:
    state.is_synced, state.last_seq, state.may_bridge = True, last_seq, may_bridge
    state.buffer, state.attempts, state.waiting_since_ns = [], 0, None


def _buffer(state: _Instrument, item: Any) -> None:
    try:
        message = _parse_book(item)
    except _Malformed:
        return  # if it mattered, its seqId is missing from the chain and the sync sees the gap
    if message.seq_ids is None:
        return  # cannot be placed against a REST snapshot
    if len(state.buffer) >= MAX_BUFFER:
        del state.buffer[0]
    state.buffer.append(message)


def _apply(book: OrderBook, message: _BookMessage) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
    return _apply_side(book, BID, message.bids), _apply_side(book, ASK, message.asks)


def _apply_side(book: OrderBook, side: str, levels: list[TextLevel]) -> tuple[Level, ...]:
    prices = [to_units(price, book.price_exp) for price, _ in levels]
    if len(set(prices)) == len(prices):
        return tuple(change for price, qty in levels if (change := book.apply(side, price, qty)) is not None)
    # A price repeated within one message: report its net change from before the message, if any.
    before = dict(book.top(side))
    for price, qty in levels:
        book.apply(side, price, qty)
    after = dict(book.top(side))
    return tuple((p, after.get(p, 0)) for p in dict.fromkeys(prices) if before.get(p, 0) != after.get(p, 0))


def _parse_book(item: Any, *, is_rest: bool = False) -> _BookMessage:
    if not isinstance(item, dict):
        raise _Malformed("data item is not an object")
    seq_ids: tuple[int, int] | None
    prev, seq = item.get("prevSeqId"), item.get("seqId")
    if is_rest:
        if not _is_int(seq):
            raise _Malformed(f"REST snapshot without a seqId: {seq!r}")
        seq_ids = (-1, seq)
    elif prev is None and seq is None:
        seq_ids = None
    elif _is_int(prev) and _is_int(seq):
        seq_ids = (prev, seq)
    else:
        raise _Malformed(f"prevSeqId={prev!r}, seqId={seq!r}")
    checksum = item.get("checksum", 0)
    if not _is_int(checksum):
        raise _Malformed(f"checksum={checksum!r}")
    ts = item.get("ts")
    exchange_ts_ns = int(ts) * MS if isinstance(ts, str) and _MILLISECONDS.fullmatch(ts) else None
    return _BookMessage(_levels(item.get("bids")), _levels(item.get("asks")), seq_ids, checksum, exchange_ts_ns)


def _levels(raw: Any) -> list[TextLevel]:
    if not isinstance(raw, list):
        raise _Malformed("bids/asks missing")
    levels: list[TextLevel] = []
    for level in raw:
        if not (isinstance(level, list) and len(level) >= 2 and _is_decimal(level[0]) and _is_decimal(level[1])):
            raise _Malformed(f"bad level {level!r}")
        levels.append((level[0], level[1]))
    return levels


def _parse_rest(body: str) -> _BookMessage:
    """`{"code":"0","msg":"","data":[{"asks":[..],"bids":[..],"ts":"<ms>","seqId":<int>}]}`"""
    payload = orjson.loads(body)
    if not isinstance(payload, dict) or payload.get("code") != "0":
        code, msg = (payload.get("code"), payload.get("msg")) if isinstance(payload, dict) else (None, None)
        raise _Malformed(f"code {code!r}: {msg}")
    data = payload.get("data")
    if not isinstance(data, list) or len(data) != 1:
        raise _Malformed("data is not a one-item list")
    return _parse_book(data[0], is_rest=True)


def _is_decimal(value: Any) -> bool:
    return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int  # not bool, not float


def _op(op: str, args: list[dict[str, str]]) -> str:
    return orjson.dumps({"op": op, "args": args}).decode()
