"""Kraken WebSocket v1 and v2: book snapshots and updates verified by the top-10 CRC32, and trades.

Both versions apply a message's levels in order, truncate each side to the subscribed depth (Kraken sends
no deletes for levels that fall out of it, so they are removals in our delta: clients must stay equal to
our book), then compare the checksum. A failed checksum, a crossed book or a level that does not fit the
instrument's exponents makes the pair stale and resubscribes it (unsubscribe + subscribe); its next
snapshot resets it. Kraken has no sequence numbers: the checksum on every update is the continuity check,
so an unparseable frame is ignored (the next checksum catches a lost update, the snapshot watchdog a lost
snapshot).

A subscription error does not reconnect (an unsupported pair would make the whole connection loop): the
pair goes stale if it was live and the snapshot watchdog resubscribes it after SNAPSHOT_TIMEOUT_NS.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import orjson

from ..book import ASK, BID, Level, OrderBook, TextLevel
from ..checksum import kraken_book_checksum
from ..events import BookChange, BookStale, InstrumentSpec, Trade
from ..fixedpoint import PrecisionError, to_units
from ..protocol import Output, Reconnect, Send, Verified

DEPTHS = (10, 25, 100, 500, 1000)
SECOND_NS = 1_000_000_000
SILENCE_TIMEOUT_NS = 10 * SECOND_NS  # Kraken sends a heartbeat every second on an idle connection
SNAPSHOT_TIMEOUT_NS = 30 * SECOND_NS  # subscribed (or failed) but no snapshot yet: resubscribe
# ArithmeticError: decimal.Overflow escapes to_units for texts like "1e999999999".
BAD_INPUT = (PrecisionError, ArithmeticError, KeyError, IndexError, TypeError, ValueError, AttributeError)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Change = tuple[str, str, str]  # (side, price text, qty text), applied in order


@dataclass
class _Pair:
    spec: InstrumentSpec
    book: OrderBook
    is_live: bool = False  # a snapshot was applied and every check since has passed
    awaiting_since_ns: int | None = None  # subscribed at this time, no snapshot yet


class _KrakenBook(ABC):
    """What v1 and v2 share: book state per pair, reset/update/verify, failure and the timers."""

    def __init__(self, instruments: list[InstrumentSpec], *, venue: str, depth: int) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"Kraken book depth must be one of {DEPTHS}, not {depth}")
        self.venue = venue
        self.depth = depth
        self._pairs = {s.venue_symbol: _Pair(s, OrderBook(s.price_exp, s.size_exp)) for s in instruments}
        self._last_frame_ns: int | None = None

    def book(self, venue_symbol: str) -> OrderBook:
        return self._pairs[venue_symbol].book

    def is_live(self, venue_symbol: str) -> bool:
        return self._pairs[venue_symbol].is_live

    def _lookup(self, name: Any) -> _Pair | None:
        return self._pairs.get(name) if isinstance(name, str) else None

    def on_open(self, now_ns: int) -> list[Output]:
        self._last_frame_ns = now_ns
        for pair in self._pairs.values():
            pair.awaiting_since_ns = now_ns
        names = list(self._pairs)
        return [Send(self._book_text("subscribe", names)), Send(self._trade_text(names))]

    def on_close(self, now_ns: int) -> list[Output]:
        self._last_frame_ns = None
        outputs: list[Output] = []
        for pair in self._pairs.values():
            if pair.is_live:
                outputs.append(BookStale(self.venue, pair.spec.symbol, "disconnected", now_ns))
            self._drop(pair)
            pair.awaiting_since_ns = None
        return outputs

    def on_rest(self, key: str, status: int, body: str, now_ns: int) -> list[Output]:
        return []

    def on_tick(self, now_ns: int) -> list[Output]:
        if self._last_frame_ns is None:
            return []
        if now_ns - self._last_frame_ns > SILENCE_TIMEOUT_NS:
            self._last_frame_ns = None  # one Reconnect, not one per tick until the shell closes
            return [Reconnect(f"no frame for {SILENCE_TIMEOUT_NS // SECOND_NS} s")]
        outputs: list[Output] = []
        for pair in self._pairs.values():
            if pair.awaiting_since_ns is not None and now_ns - pair.awaiting_since_ns > SNAPSHOT_TIMEOUT_NS:
                outputs += self._resubscribe(pair, now_ns)
        return outputs

    def on_message(self, text: str, now_ns: int) -> list[Output]:
        self._last_frame_ns = now_ns
        try:
            return self._on_frame(text, now_ns)
        except BAD_INPUT:
            return []  # malformed outside any pair's book: nothing to invalidate

    @abstractmethod
    def _on_frame(self, text: str, now_ns: int) -> list[Output]: ...

    @abstractmethod
    def _book_text(self, action: str, venue_symbols: list[str]) -> str: ...

    @abstractmethod
    def _trade_text(self, venue_symbols: list[str]) -> str: ...

    # --- book ----------------------------------------------------------------------------------------

    def _reset(
        self,
        pair: _Pair,
        bids: list[TextLevel],
        asks: list[TextLevel],
        *,
        checksum: int | None,
        exchange_ns: int | None,
        now_ns: int,
    ) -> list[Output]:
        book = pair.book
        try:
            book.load(bids, asks)
        except BAD_INPUT as exc:
            return self._fail(pair, f"bad snapshot level: {exc!r}", now_ns)
        book.truncate(BID, self.depth)
        book.truncate(ASK, self.depth)
        checks: list[Output] = []
        if checksum is not None:
            check = self._verify(pair, checksum)
            checks.append(check)
            if not check.is_ok:
                return [*checks, *self._fail(pair, check.detail, now_ns)]
        if book.is_crossed():
            return [*checks, *self._fail(pair, "crossed book", now_ns)]
        pair.is_live, pair.awaiting_since_ns = True, None
        whole = BookChange(
            self.venue, pair.spec.symbol, tuple(book.top(BID)), tuple(book.top(ASK)), True, exchange_ns, now_ns
        )
        return [whole, *checks]

    def _update(
        self, pair: _Pair, changes: list[Change], *, checksum: int, exchange_ns: int | None, now_ns: int
    ) -> list[Output]:
        book = pair.book
        delta: dict[str, dict[int, int]] = {BID: {}, ASK: {}}  # several changes to one price: the last wins
        try:
            for side, price, qty in changes:
                if (change := book.apply(side, price, qty)) is not None:
                    delta[side][change[0]] = change[1]
        except BAD_INPUT as exc:
            return self._fail(pair, f"bad level: {exc!r}", now_ns)
        for side in (BID, ASK):
            # A level inserted and truncated by the same message is a removal the client never needed:
            # harmless, and knowing it would cost a lookup per level.
            delta[side].update(book.truncate(side, self.depth))
        check = self._verify(pair, checksum)
        if not check.is_ok:
            return [check, *self._fail(pair, check.detail, now_ns)]
        if book.is_crossed():
            return [check, *self._fail(pair, "crossed book", now_ns)]
        if not delta[BID] and not delta[ASK]:
            return [check]
        bids: tuple[Level, ...] = tuple(delta[BID].items())
        asks: tuple[Level, ...] = tuple(delta[ASK].items())
        return [BookChange(self.venue, pair.spec.symbol, bids, asks, False, exchange_ns, now_ns), check]

    def _verify(self, pair: _Pair, expected: int) -> Verified:
        actual = kraken_book_checksum(pair.book)
        if actual == expected:
            return Verified(pair.spec.symbol, "checksum", True)
        return Verified(pair.spec.symbol, "checksum", False, f"checksum {expected} != book {actual}")

    def _fail(self, pair: _Pair, reason: str, now_ns: int) -> list[Output]:
        """The book can no longer be trusted: stale (if it was live), emptied, resubscribed."""
        outputs: list[Output] = []
        if pair.is_live:
            outputs.append(BookStale(self.venue, pair.spec.symbol, reason, now_ns))
        self._drop(pair)
        return outputs + self._resubscribe(pair, now_ns)

    def _drop(self, pair: _Pair) -> None:
        pair.book.clear()
        pair.is_live = False

    def _resubscribe(self, pair: _Pair, now_ns: int) -> list[Output]:
        pair.awaiting_since_ns = now_ns
        names = [pair.spec.venue_symbol]
        return [Send(self._book_text("unsubscribe", names)), Send(self._book_text("subscribe", names))]

    def _on_subscription_error(self, pair: _Pair, message: str, now_ns: int) -> list[Output]:
        """Stale if live; the snapshot watchdog retries, so an unsupported pair cannot loop tightly."""
        outputs: list[Output] = []
        if pair.is_live:
            outputs.append(BookStale(self.venue, pair.spec.symbol, f"subscription error: {message}", now_ns))
        self._drop(pair)
        if pair.awaiting_since_ns is None:
            pair.awaiting_since_ns = now_ns
        return outputs


class KrakenV1Protocol(_KrakenBook):
    """`wss://ws.kraken.com`: array channel messages routed by their pair and channel name."""

    def __init__(self, instruments: list[InstrumentSpec], *, venue: str = "kraken", depth: int = 1000) -> None:
        super().__init__(instruments, venue=venue, depth=depth)

    def ws_path(self) -> str:
        return "/"

    def _book_text(self, action: str, venue_symbols: list[str]) -> str:
        frame = {"event": action, "pair": venue_symbols, "subscription": {"name": "book", "depth": self.depth}}
        return orjson.dumps(frame).decode()

    def _trade_text(self, venue_symbols: list[str]) -> str:
        frame = {"event": "subscribe", "pair": venue_symbols, "subscription": {"name": "trade"}}
        return orjson.dumps(frame).decode()

    def _on_frame(self, text: str, now_ns: int) -> list[Output]:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []
        if isinstance(message, dict):
            return self._on_event(message, now_ns)
        if not isinstance(message, list) or len(message) < 4:
            return []
        # Channel ids are per subscription and reused after a resubscribe: the pair and channel name
        # (the last two elements) say what a message is.
        channel, name = message[-2], message[-1]
        pair = self._lookup(name)
        if pair is None or not isinstance(channel, str):
            return []
        if channel.startswith("book"):
            return self._on_book(pair, message[1:-2], now_ns)
        if channel == "trade":
            return self._on_trades(pair, message[1], now_ns)
        return []  # ticker, spread, ohlc: not ours

    def _on_event(self, message: dict[str, Any], now_ns: int) -> list[Output]:
        event = message.get("event")
        if event == "systemStatus" and message.get("status") == "maintenance":
            return [Reconnect("Kraken system status: maintenance")]
        if event != "subscriptionStatus" or message.get("status") != "error":
            return []  # heartbeat, pong, subscribed, unsubscribed, other statuses
        pair = self._lookup(message.get("pair"))
        subscription = message.get("subscription")
        if pair is None or not isinstance(subscription, dict) or subscription.get("name") != "book":
            return []
        return self._on_subscription_error(pair, str(message.get("errorMessage", "")), now_ns)

    def _on_book(self, pair: _Pair, parts: list[Any], now_ns: int) -> list[Output]:
        snapshot = next((p for p in parts if isinstance(p, dict) and ("as" in p or "bs" in p)), None)
        if snapshot is None and not pair.is_live:
            return []  # the tail of a subscription we left: wait for the snapshot
        try:
            if snapshot is not None:
                asks, ask_ns = _v1_levels(snapshot.get("as", []))
                bids, bid_ns = _v1_levels(snapshot.get("bs", []))
                checksum = int(snapshot["c"]) if "c" in snapshot else None  # v1 sends none: verified on updates
                exchange_ns = max(ask_ns, bid_ns) or None
                return self._reset(pair, bids, asks, checksum=checksum, exchange_ns=exchange_ns, now_ns=now_ns)
            changes, checksum, exchange_ns = _v1_changes(parts)
        except PrecisionError as exc:
            return self._fail(pair, f"bad level: {exc}", now_ns)
        except BAD_INPUT as exc:
            return self._fail(pair, f"malformed book message: {exc!r}", now_ns)
        return self._update(pair, changes, checksum=checksum, exchange_ns=exchange_ns or None, now_ns=now_ns)

    def _on_trades(self, pair: _Pair, rows: Any, now_ns: int) -> list[Output]:
        spec = pair.spec
        outputs: list[Output] = []
        for row in rows if isinstance(rows, list) else ():
            try:
                side = row[3]
                if side not in ("b", "s"):
                    continue
                trade = Trade(
                    venue=self.venue,
                    symbol=spec.symbol,
                    trade_id="",  # v1 trades carry no id
                    price=to_units(_text(row[0]), spec.price_exp),
                    qty=to_units(_text(row[1]), spec.size_exp),
                    aggressor="buy" if side == "b" else "sell",  # the taker's side
                    exchange_ts_ns=to_units(_text(row[2]), 9),
                    receive_ts_ns=now_ns,
                )
            except BAD_INPUT:
                continue
            outputs.append(trade)
        return outputs


class KrakenV2Protocol(_KrakenBook):
    """`wss://ws.kraken.com/v2`: JSON-number levels, written at the pair's precision for the checksum."""

    def __init__(self, instruments: list[InstrumentSpec], *, venue: str = "kraken", depth: int = 10) -> None:
        super().__init__(instruments, venue=venue, depth=depth)

    def ws_path(self) -> str:
        return "/v2"

    def _book_text(self, action: str, venue_symbols: list[str]) -> str:
        frame = {"method": action, "params": {"channel": "book", "symbol": venue_symbols, "depth": self.depth}}
        return orjson.dumps(frame).decode()

    def _trade_text(self, venue_symbols: list[str]) -> str:
        # No trade snapshot: replaying the last 50 trades after every reconnect would duplicate them.
        frame = {"method": "subscribe", "params": {"channel": "trade", "symbol": venue_symbols, "snapshot": False}}
        return orjson.dumps(frame).decode()

    def _on_frame(self, text: str, now_ns: int) -> list[Output]:
        try:
            # Numbers keep their text (orjson would make floats): "45281.0" must not become 45281.0.
            message = json.loads(text, parse_float=str, parse_int=str, parse_constant=_reject)
        except (ValueError, RecursionError):
            return []
        if not isinstance(message, dict):
            return []
        channel = message.get("channel")
        data = message.get("data")
        if channel == "book" and isinstance(data, list):
            return [out for entry in data for out in self._on_book(entry, message.get("type"), now_ns)]
        if channel == "trade" and message.get("type") == "update" and isinstance(data, list):
            return [trade for entry in data if (trade := self._trade(entry, now_ns)) is not None]
        if channel == "status" and isinstance(data, list):
            if any(isinstance(d, dict) and d.get("system") == "maintenance" for d in data):
                return [Reconnect("Kraken system status: maintenance")]
            return []
        if message.get("method") == "subscribe" and message.get("success") is False:
            return self._on_subscribe_failed(message, now_ns)
        return []  # heartbeat, pong, acknowledgements

    def _on_subscribe_failed(self, message: dict[str, Any], now_ns: int) -> list[Output]:
        result = message.get("result")
        channel = result.get("channel") if isinstance(result, dict) else None
        pair = self._lookup(message.get("symbol"))
        if pair is None or channel not in (None, "book"):
            return []
        return self._on_subscription_error(pair, str(message.get("error", "")), now_ns)

    def _on_book(self, entry: Any, kind: Any, now_ns: int) -> list[Output]:
        # One entry per symbol: an exception here would lose the outputs of entries already applied.
        pair = self._lookup(entry.get("symbol")) if isinstance(entry, dict) else None
        if pair is None or kind not in ("snapshot", "update"):
            return []
        if kind == "update" and not pair.is_live:
            return []  # the tail of a subscription we left: wait for the snapshot
        spec = pair.spec
        try:
            bids = [_v2_level(level, spec) for level in entry.get("bids", [])]
            asks = [_v2_level(level, spec) for level in entry.get("asks", [])]
            checksum = int(entry["checksum"])
        except PrecisionError as exc:
            return self._fail(pair, f"bad level: {exc}", now_ns)
        except BAD_INPUT as exc:
            return self._fail(pair, f"malformed book message: {exc!r}", now_ns)
        exchange_ns = _iso_ns(entry.get("timestamp"))
        if kind == "snapshot":
            return self._reset(pair, bids, asks, checksum=checksum, exchange_ns=exchange_ns, now_ns=now_ns)
        changes = [(BID, p, q) for p, q in bids] + [(ASK, p, q) for p, q in asks]
        return self._update(pair, changes, checksum=checksum, exchange_ns=exchange_ns, now_ns=now_ns)

    def _trade(self, entry: Any, now_ns: int) -> Trade | None:
        pair = self._lookup(entry.get("symbol")) if isinstance(entry, dict) else None
        if pair is None or entry.get("side") not in ("buy", "sell"):
            return None
        spec = pair.spec
        try:
            return Trade(
                venue=self.venue,
                symbol=spec.symbol,
                trade_id=str(entry.get("trade_id", "")),
                price=to_units(_text(entry["price"]), spec.price_exp),
                qty=to_units(_text(entry["qty"]), spec.size_exp),
                aggressor=entry["side"],  # the taker's side
                exchange_ts_ns=_iso_ns(entry.get("timestamp")),
                receive_ts_ns=now_ns,
            )
        except BAD_INPUT:
            return None


# --- parsing ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a decimal string, got {value!r}")
    return value


def _v1_level(level: Any) -> tuple[str, str, int]:
    """[price, volume, timestamp(, "r")] → the texts as sent (the checksum is over them) and the time in ns."""
    price, qty = _text(level[0]), _text(level[1])
    if price.startswith("-") or qty.startswith("-"):
        raise ValueError(f"negative level {level!r}")
    return price, qty, to_units(_text(level[2]), 9)


def _v1_levels(raw: Iterable[Any]) -> tuple[list[TextLevel], int]:
    levels: list[TextLevel] = []
    latest_ns = 0
    for entry in raw:
        price, qty, ts_ns = _v1_level(entry)
        levels.append((price, qty))
        latest_ns = max(latest_ns, ts_ns)
    return levels, latest_ns


def _v1_changes(parts: list[Any]) -> tuple[list[Change], int, int]:
    """An update's one or two dicts → changes in order, the checksum (`c`, in the last dict), latest time."""
    changes: list[Change] = []
    checksum: int | None = None
    latest_ns = 0
    for part in parts:
        if not isinstance(part, dict):
            raise TypeError(f"expected an update dict, got {part!r}")
        for key, side in (("a", ASK), ("b", BID)):
            for entry in part.get(key, ()):
                price, qty, ts_ns = _v1_level(entry)
                changes.append((side, price, qty))
                latest_ns = max(latest_ns, ts_ns)
        if "c" in part:
            checksum = int(part["c"])
    if checksum is None:
        raise KeyError("update without checksum c")
    return changes, checksum, latest_ns


def _v2_level(level: Any, spec: InstrumentSpec) -> TextLevel:
    """{"price": n, "qty": n} → texts at the pair's precision: qty 0.1 at 8 decimals is "0.10000000"."""
    price = to_units(_text(level["price"]), spec.price_exp)
    qty = to_units(_text(level["qty"]), spec.size_exp)
    if price < 0 or qty < 0:
        raise ValueError(f"negative level {level!r}")
    return _fixed(price, spec.price_exp), _fixed(qty, spec.size_exp)


def _fixed(units: int, exponent: int) -> str:
    if exponent == 0:
        return str(units)
    whole, frac = divmod(units, 10**exponent)
    return f"{whole}.{frac:0{exponent}d}"


def _iso_ns(value: Any) -> int | None:
    """An ISO time such as 2023-10-06T17:35:55.440295Z → ns since the epoch, exactly; None when absent or unreadable."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return None
    head, _, frac = value[:-1].partition(".")
    if frac and not (frac.isascii() and frac.isdigit()):
        return None
    try:
        moment = datetime.fromisoformat(head).replace(tzinfo=UTC)
    except ValueError:
        return None
    return (moment - EPOCH) // timedelta(seconds=1) * SECOND_NS + int(frac[:9].ljust(9, "0"))


def _reject(constant: str) -> NoReturn:
    raise ValueError(f"not a number: {constant}")
