"""Coinbase books and trades: Advanced Trade `level2` (numbered messages) and Exchange `level2_batch`.

Both send a WebSocket snapshot, then absolute level quantities ("0" deletes). Advanced Trade numbers every
message on the connection across all channels (`sequence_num`), so one gap makes every book on it suspect:
all go stale and the connection is reopened, which restarts the numbering and resends the snapshots. The
Exchange feed has no sequence numbers: the only integrity signal left is that a book never crosses. In both,
a trade's `side` is the MAKER's side, so the aggressor is the other one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import orjson

from ..book import ASK, BID, Level, OrderBook, TextLevel, merge_changes
from ..events import BookChange, BookStale, InstrumentSpec, Trade
from ..fixedpoint import PrecisionError, to_units
from ..protocol import Output, Reconnect, Send, Verified

NS = 1_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Exchange sends 6 fractional digits, Advanced Trade up to 9; more than 9 are cut (below a nanosecond).
_ISO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(Z|[+-]\d{2}:?\d{2})?", re.ASCII
)
# Plain non-negative decimals only: a sign, an exponent or whitespace in a level is a malformed frame.
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_AGGRESSOR_OF_MAKER = {"buy": "sell", "sell": "buy"}
_EXCHANGE_SIDES = {"buy": BID, "sell": ASK}
_ADVANCED_SIDES = {"bid": BID, "offer": ASK}
_ADVANCED_CHANNELS = ("level2", "heartbeats", "market_trades")
# What a well-formed JSON frame with the wrong shapes raises while we pick it apart (PrecisionError is a
# ValueError).
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass
class _Product:
    spec: InstrumentSpec
    book: OrderBook
    is_synced: bool = False
    last_trade_id: int | None = None  # highest numeric trade id emitted: a resubscription replays recent ones
    is_trade_run_open: bool = False  # a trade on this connection has set the base for the contiguity check


class _CoinbaseFeed:
    """What both Coinbase feeds share: products, books, staleness, one Reconnect per connection, trades."""

    def __init__(self, instruments: list[InstrumentSpec], venue: str) -> None:
        self.venue = venue
        self._products = {s.venue_symbol.upper(): _Product(s, OrderBook(s.price_exp, s.size_exp)) for s in instruments}
        self._is_reconnecting = False

    def ws_path(self) -> str:
        return "/"

    def book(self, product_id: str) -> OrderBook:
        return self._products[product_id.upper()].book

    def on_rest(self, key: str, status: int, body: str, now_ns: int) -> list[Output]:
        return []

    def on_tick(self, now_ns: int) -> list[Output]:
        return []

    def on_close(self, now_ns: int) -> list[Output]:
        outputs = self._stale_all("disconnected", now_ns)
        self._is_reconnecting = False
        return outputs

    def _begin_connection(self, now_ns: int) -> list[Output]:
        # Books still live here mean the shell skipped on_close: they belong to a connection that is gone.
        outputs = self._stale_all("reconnected", now_ns)
        self._is_reconnecting = False
        for product in self._products.values():
            product.is_trade_run_open = False
        return outputs

    def _product(self, product_id: object) -> _Product | None:
        return self._products.get(product_id.upper()) if isinstance(product_id, str) else None

    # --- staleness -----------------------------------------------------------------------------------

    def _unsync(self, product: _Product, reason: str, now_ns: int) -> list[Output]:
        was_synced = product.is_synced
        product.is_synced = False
        product.book.clear()
        return [BookStale(self.venue, product.spec.symbol, reason, now_ns)] if was_synced else []

    def _stale_all(self, reason: str, now_ns: int) -> list[Output]:
        outputs: list[Output] = []
        for product in self._products.values():
            outputs += self._unsync(product, reason, now_ns)
        return outputs

    def _reconnect(self, reason: str) -> list[Output]:
        """One Reconnect per connection: a second one while the first is pending would only add noise."""
        if self._is_reconnecting:
            return []
        self._is_reconnecting = True
        return [Reconnect(reason)]

    def _fail(self, product: _Product, reason: str, now_ns: int) -> list[Output]:
        """Only a new subscription brings a new snapshot: this book is stale until the reconnect."""
        return self._unsync(product, reason, now_ns) + self._reconnect(f"{product.spec.venue_symbol}: {reason}")

    def _fail_all(self, reason: str, now_ns: int) -> list[Output]:
        return self._stale_all(reason, now_ns) + self._reconnect(reason)

    # --- books ---------------------------------------------------------------------------------------

    def _load(
        self,
        product: _Product,
        bids: list[TextLevel],
        asks: list[TextLevel],
        *,
        exchange_ns: int | None,
        seq: int | None,
        now_ns: int,
    ) -> list[Output]:
        book = product.book
        try:
            book.load(bids, asks)
        except PrecisionError as exc:
            return self._fail(product, f"bad snapshot: {exc}", now_ns)
        if book.is_crossed():
            return self._fail(product, "crossed snapshot", now_ns)
        product.is_synced = True
        reset = BookChange(
            self.venue, product.spec.symbol, tuple(book.top(BID)), tuple(book.top(ASK)), True, exchange_ns, now_ns, seq
        )
        return [reset]

    def _apply(
        self,
        product: _Product,
        changes: list[tuple[str, str, str]],
        *,
        exchange_ns: int | None,
        seq: int | None,
        now_ns: int,
    ) -> list[Output]:
        if not product.is_synced:
            return []  # before its snapshot (or after a failure): nothing to apply it to
        book = product.book
        bids: list[Level] = []
        asks: list[Level] = []
        try:
            for side, price, qty in changes:
                if (change := book.apply(side, price, qty)) is not None:
                    (bids if side == BID else asks).append(change)
        except PrecisionError as exc:
            return self._fail(product, f"bad level: {exc}", now_ns)
        if book.is_crossed():
            return self._fail(product, "crossed book", now_ns)
        if not bids and not asks:
            return []
        return [
            BookChange(
                self.venue,
                product.spec.symbol,
                merge_changes(bids),
                merge_changes(asks),
                False,
                exchange_ns,
                now_ns,
                seq,
            )
        ]

    # --- trades --------------------------------------------------------------------------------------

    def _trade(self, product: _Product, data: dict[str, Any], now_ns: int, *, check_sequence: bool) -> list[Output]:
        symbol = product.spec.symbol
        try:
            maker_side = data["side"]
            aggressor = _AGGRESSOR_OF_MAKER[maker_side.lower()]
            trade_id = data["trade_id"]
            if not isinstance(trade_id, str | int) or isinstance(trade_id, bool):
                raise TypeError(f"trade_id {trade_id!r}")
            price = to_units(_decimal(data["price"]), product.spec.price_exp)
            qty = to_units(_decimal(data["size"]), product.spec.size_exp)
        except _MALFORMED as exc:
            return [Verified(symbol, "trade_parse", False, f"{exc!r}")]
        outputs: list[Output] = []
        number = _trade_number(trade_id)
        if number is not None:
            last = product.last_trade_id
            if last is not None and number <= last:
                # After a resubscription the venue replays its latest trades: already emitted, drop quietly.
                # On the same connection it is a duplicate or a reordering worth counting.
                if check_sequence and product.is_trade_run_open:
                    return [Verified(symbol, "trade_sequence", False, f"trade_id {number} not after {last}")]
                return []
            if check_sequence and product.is_trade_run_open and last is not None:
                missing = number - last - 1
                detail = f"trade_id {number} after {last}: {missing} missing" if missing else ""
                outputs.append(Verified(symbol, "trade_sequence", not missing, detail))
            product.last_trade_id = number
            product.is_trade_run_open = True
        trade = Trade(self.venue, symbol, str(trade_id), price, qty, aggressor, parse_iso_ns(data.get("time")), now_ns)
        return [trade, *outputs]


class CoinbaseAdvancedProtocol(_CoinbaseFeed):
    """Advanced Trade `wss://advanced-trade-ws.coinbase.com`: `level2`, `heartbeats`, `market_trades`."""

    def __init__(self, instruments: list[InstrumentSpec], *, venue: str = "coinbase") -> None:
        super().__init__(instruments, venue)
        self._last_seq: int | None = None
        self._is_broken = False  # a gap was seen: nothing more on this connection can be trusted

    def on_open(self, now_ns: int) -> list[Output]:
        outputs = self._begin_connection(now_ns)
        self._last_seq, self._is_broken = None, False
        product_ids = list(self._products)
        for channel in _ADVANCED_CHANNELS:
            frame: dict[str, Any] = {"type": "subscribe", "channel": channel}
            if channel != "heartbeats":  # the only channel that takes no products
                frame["product_ids"] = product_ids
            outputs.append(Send(_dumps(frame)))
        return outputs

    def on_close(self, now_ns: int) -> list[Output]:
        self._last_seq, self._is_broken = None, False
        return super().on_close(now_ns)

    def on_message(self, text: str, now_ns: int) -> list[Output]:
        if self._is_broken:
            return []  # waiting for the reconnect already asked for
        message = _load_object(text)
        if message is None:
            # It surely carried a sequence number, so the numbering is lost for every book.
            return self._break("unparseable frame", now_ns)
        if message.get("type") == "error":
            return self._reconnect(f"venue error: {_error_text(message)}")
        seq = message.get("sequence_num")
        channel = message.get("channel")
        if isinstance(seq, int) and not isinstance(seq, bool):
            if self._last_seq is not None and seq != self._last_seq + 1:
                return self._break(f"sequence gap: sequence_num {seq} after {self._last_seq}", now_ns)
            self._last_seq = seq
            if channel == "l2_data":
                return self._on_l2(message, seq, now_ns)
        elif channel == "l2_data":
            return self._break("l2_data without sequence_num", now_ns)
        if channel == "market_trades":
            return self._on_market_trades(message, now_ns)
        return []

    def _break(self, reason: str, now_ns: int) -> list[Output]:
        self._is_broken = True
        return self._fail_all(reason, now_ns)

    def _on_l2(self, message: dict[str, Any], seq: int, now_ns: int) -> list[Output]:
        events = message.get("events")
        if not isinstance(events, list):
            return self._break("malformed l2_data", now_ns)
        exchange_ns = parse_iso_ns(message.get("timestamp"))
        outputs: list[Output] = []
        for event in events:
            if not isinstance(event, dict):
                return outputs + self._break("malformed l2_data event", now_ns)
            product = self._product(event.get("product_id"))
            if product is not None:
                outputs += self._on_l2_event(product, event, exchange_ns, seq, now_ns)
        return outputs

    def _on_l2_event(
        self, product: _Product, event: dict[str, Any], exchange_ns: int | None, seq: int, now_ns: int
    ) -> list[Output]:
        kind = event.get("type")
        try:
            changes = [_advanced_level(update) for update in _as_list(event["updates"])]
        except _MALFORMED as exc:
            return self._fail(product, f"malformed l2_data {kind}: {exc!r}", now_ns)
        if kind == "snapshot":
            bids = [(price, qty) for side, price, qty in changes if side == BID]
            asks = [(price, qty) for side, price, qty in changes if side == ASK]
            return self._load(product, bids, asks, exchange_ns=exchange_ns, seq=seq, now_ns=now_ns)
        if kind == "update":
            return self._apply(product, changes, exchange_ns=exchange_ns, seq=seq, now_ns=now_ns)
        return self._fail(product, f"unknown l2_data event type {kind!r}", now_ns)

    def _on_market_trades(self, message: dict[str, Any], now_ns: int) -> list[Output]:
        outputs: list[Output] = []
        events = message.get("events")
        for event in events if isinstance(events, list) else []:
            trades = event.get("trades") if isinstance(event, dict) else None
            # Listed newest first: emitted oldest first, so the tape and the id de-duplication run forwards.
            for data in reversed(trades) if isinstance(trades, list) else []:
                product = self._product(data.get("product_id")) if isinstance(data, dict) else None
                if product is not None:
                    outputs += self._trade(product, data, now_ns, check_sequence=False)
        return outputs


class CoinbaseExchangeProtocol(_CoinbaseFeed):
    """Exchange `wss://ws-feed.exchange.coinbase.com`: `level2_batch` (or legacy `level2`), matches, heartbeat."""

    def __init__(
        self, instruments: list[InstrumentSpec], *, venue: str = "coinbase", channel: str = "level2_batch"
    ) -> None:
        super().__init__(instruments, venue)
        self.channel = channel

    def on_open(self, now_ns: int) -> list[Output]:
        outputs = self._begin_connection(now_ns)
        frame = {
            "type": "subscribe",
            "product_ids": list(self._products),
            "channels": [self.channel, "matches", "heartbeat"],
        }
        return [*outputs, Send(_dumps(frame))]

    def on_message(self, text: str, now_ns: int) -> list[Output]:
        message = _load_object(text)
        if message is None:
            # Without sequence numbers a lost frame is undetectable later: if it was an l2update, any book
            # may now be wrong.
            return self._fail_all("unparseable frame", now_ns)
        kind = message.get("type")
        if kind == "l2update":
            return self._on_l2update(message, now_ns)
        if kind in ("match", "last_match"):
            product = self._product(message.get("product_id"))
            return self._trade(product, message, now_ns, check_sequence=True) if product is not None else []
        if kind == "snapshot":
            return self._on_snapshot(message, now_ns)
        if kind == "error":
            return self._reconnect(f"venue error: {_error_text(message)}")
        return []

    def _on_snapshot(self, message: dict[str, Any], now_ns: int) -> list[Output]:
        product = self._product(message.get("product_id"))
        if product is None:
            return []
        try:
            bids = [_exchange_level(level) for level in _as_list(message["bids"])]
            asks = [_exchange_level(level) for level in _as_list(message["asks"])]
        except _MALFORMED as exc:
            return self._fail(product, f"malformed snapshot: {exc!r}", now_ns)
        return self._load(product, bids, asks, exchange_ns=parse_iso_ns(message.get("time")), seq=None, now_ns=now_ns)

    def _on_l2update(self, message: dict[str, Any], now_ns: int) -> list[Output]:
        product = self._product(message.get("product_id"))
        if product is None or not product.is_synced:
            return []
        try:
            changes = [_exchange_change(change) for change in _as_list(message["changes"])]
        except _MALFORMED as exc:
            return self._fail(product, f"malformed l2update: {exc!r}", now_ns)
        return self._apply(product, changes, exchange_ns=parse_iso_ns(message.get("time")), seq=None, now_ns=now_ns)


# --- parsing helpers ---------------------------------------------------------------------------------


def parse_iso_ns(text: object) -> int | None:
    """`"2021-04-17T16:43:30.244075Z"` → ns since the epoch, in integers only; None when it is no such time.

    A missing zone is read as UTC (Coinbase only sends UTC); fractions past 9 digits are cut.
    """
    match = _ISO_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    days = _epoch_day(year, month, day)
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if days is None or hours > 23 or minutes > 59 or seconds > 59:
        return None
    elapsed_s = days * 86_400 + hours * 3600 + minutes * 60 + seconds - _zone_offset_s(zone)
    return elapsed_s * NS + int((fraction or "").ljust(9, "0"))


@lru_cache(maxsize=64)
def _epoch_day(year: str, month: str, day: str) -> int | None:
    """Days since 1970-01-01, or None for a date that does not exist (cached: a feed stays on one day)."""
    try:
        return date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _zone_offset_s(zone: str | None) -> int:
    if zone is None or zone == "Z":
        return 0
    digits = zone[1:].replace(":", "")
    offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
    return -offset if zone[0] == "-" else offset


def _load_object(text: str) -> dict[str, Any] | None:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def _error_text(message: dict[str, Any]) -> str:
    parts = [str(message[k]) for k in ("message", "reason") if message.get(k)]
    return ": ".join(parts) or "error without a message"


def _as_list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _decimal(value: object) -> str:
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return value
    raise ValueError(f"not a plain decimal: {value!r}")


def _exchange_level(level: object) -> TextLevel:
    """`[price, size]` (older feeds add a third element, the order count)."""
    items = _as_list(level)
    return _decimal(items[0]), _decimal(items[1])


def _exchange_change(change: object) -> tuple[str, str, str]:
    side, price, size = _as_list(change)[:3]
    return _EXCHANGE_SIDES[side.lower()], _decimal(price), _decimal(size)


def _advanced_level(update: object) -> tuple[str, str, str]:
    if not isinstance(update, dict):
        raise TypeError(f"expected an object, got {type(update).__name__}")
    return _ADVANCED_SIDES[update["side"].lower()], _decimal(update["price_level"]), _decimal(update["new_quantity"])


def _trade_number(trade_id: str | int) -> int | None:
    """Numeric trade ids (all Coinbase products today) can be ordered; anything else is only passed on."""
    if isinstance(trade_id, int):
        return trade_id
    return int(trade_id) if trade_id.isascii() and trade_id.isdigit() else None
