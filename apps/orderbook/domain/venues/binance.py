"""Binance spot: REST depth snapshot + `@depth@100ms` diff stream, synchronised by the documented rule.

1. buffer stream events; 2. fetch the snapshot; 3. drop events with u <= lastUpdateId; 4. the first kept
event must have U <= lastUpdateId + 1 <= u (else the snapshot is too old: fetch again); 5. each later
event must have U == previous u + 1, else the book is invalid: stale, buffer, fetch again.
`@bookTicker` whose `u` equals the book's last id must match the top of book exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..book import ASK, BID, OrderBook
from ..events import BookChange, BookStale, InstrumentSpec, Trade
from ..fixedpoint import PrecisionError, to_units
from ..protocol import Fetch, Output, Reconnect, Verified

MAX_SNAPSHOT_ATTEMPTS = 5
MS = 1_000_000


@dataclass
class _Symbol:
    spec: InstrumentSpec
    book: OrderBook
    buffer: list[dict[str, Any]] = field(default_factory=list)
    snapshot: dict[str, Any] | None = None
    last_u: int | None = None  # last applied update id, once synchronised
    attempts: int = 0
    fetch_no: int = 0
    is_published: bool = False  # a reset went out: a failure from here on is a stale book
    # bookTickers are real time and the diff stream batches 100 ms: a ticker usually arrives before the
    # depth event that reaches its id, so it waits here until the book gets there (or passes it).
    tickers: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def is_synced(self) -> bool:
        return self.last_u is not None


class BinanceProtocol:
    def __init__(
        self, instruments: list[InstrumentSpec], *, venue: str = "binance", snapshot_limit: int = 1000
    ) -> None:
        self.venue = venue
        self.snapshot_limit = snapshot_limit
        self._symbols = {
            s.venue_symbol.upper(): _Symbol(s, OrderBook(s.price_exp, s.size_exp, keep_text=False)) for s in instruments
        }

    def ws_path(self) -> str:
        streams = []
        for name in self._symbols:
            low = name.lower()
            streams += [f"{low}@depth@100ms", f"{low}@bookTicker", f"{low}@aggTrade"]
        return "/stream?streams=" + "/".join(streams)

    def book(self, venue_symbol: str) -> OrderBook:
        return self._symbols[venue_symbol.upper()].book

    def on_open(self, now_ns: int) -> list[Output]:
        outputs: list[Output] = []
        for state in self._symbols.values():
            outputs += self._restart(state, None, now_ns, reason="")
        return outputs

    def on_close(self, now_ns: int) -> list[Output]:
        outputs: list[Output] = []
        for state in self._symbols.values():
            if state.is_published:
                outputs.append(BookStale(self.venue, state.spec.symbol, "disconnected", now_ns))
            state.last_u, state.buffer, state.snapshot, state.is_published = None, [], None, False
        return outputs

    def on_tick(self, now_ns: int) -> list[Output]:
        return []

    def on_message(self, text: str, now_ns: int) -> list[Output]:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [Reconnect("unparseable frame")]
        data = message.get("data", message) if isinstance(message, dict) else None
        if not isinstance(data, dict):
            return []
        event = data.get("e")
        if event == "depthUpdate":
            return self._on_depth(data, now_ns)
        if event in ("aggTrade", "trade"):
            return self._on_trade(data, now_ns)
        if "u" in data and "b" in data and "B" in data:
            return self._on_book_ticker(data, now_ns)
        if event == "serverShutdown":
            return [Reconnect("server shutdown announced")]
        return []

    def on_rest(self, key: str, status: int, body: str, now_ns: int) -> list[Output]:
        name, _, fetch_no = key.partition("#")
        state = self._symbols.get(name)
        if state is None or str(state.fetch_no) != fetch_no or state.is_synced:
            return []  # an answer to a request that a later resync replaced
        if status != 200:
            return self._refetch(state, f"snapshot HTTP {status}", now_ns)
        try:
            snapshot = orjson.loads(body)
            int(snapshot["lastUpdateId"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return self._refetch(state, "unparseable snapshot", now_ns)
        state.snapshot = snapshot
        return self._try_sync(state, now_ns)

    # --- depth ---------------------------------------------------------------------------------------

    def _on_depth(self, data: dict[str, Any], now_ns: int) -> list[Output]:
        name = data.get("s")
        state = self._symbols.get(name) if isinstance(name, str) else None  # Binance sends it upper case
        if state is None:
            state = self._symbols.get(str(name or "").upper())
            if state is None:
                return []
        if state.last_u is None:  # not synchronised yet
            if not isinstance(data.get("U"), int) or not isinstance(data.get("u"), int):
                return []  # unusable for synchronisation; the U/u chain shows anything it hid
            state.buffer.append(data)
            return self._try_sync(state, now_ns) if state.snapshot is not None else []
        try:
            first, last = int(data["U"]), int(data["u"])
        except (KeyError, TypeError, ValueError):
            return self._restart(state, None, now_ns, reason="depth event without valid U/u")
        assert state.last_u is not None
        if last <= state.last_u:
            return []  # a duplicate or replayed frame: already applied
        if first != state.last_u + 1:
            return self._restart(state, data, now_ns, reason=f"gap: U={first} after u={state.last_u}")
        try:
            bids, asks = state.book.apply_update(data["b"], data["a"])
        except (PrecisionError, KeyError, TypeError, ValueError) as exc:
            return self._restart(state, None, now_ns, reason=f"bad depth event: {exc}")
        state.last_u = last
        if state.book.is_crossed():
            return self._restart(state, None, now_ns, reason="crossed book")
        outputs: list[Output] = []
        if bids or asks:
            exchange_ns = int(data.get("E", 0)) * MS or None
            outputs.append(BookChange(self.venue, state.spec.symbol, bids, asks, False, exchange_ns, now_ns, last))
        if state.tickers:  # a bookTicker waiting for the book to reach its id
            outputs += self._check_waiting_ticker(state, now_ns)
        return outputs

    def _try_sync(self, state: _Symbol, now_ns: int) -> list[Output]:
        snapshot = state.snapshot
        assert snapshot is not None
        last_id = int(snapshot["lastUpdateId"])
        kept = [e for e in state.buffer if int(e["u"]) > last_id]
        state.buffer = kept
        if not kept:
            return []  # wait for an event after the snapshot
        if not int(kept[0]["U"]) <= last_id + 1 <= int(kept[0]["u"]):
            return self._refetch(state, f"snapshot {last_id} older than first event U={kept[0]['U']}", now_ns)
        checks: list[Verified] = []
        try:
            state.book.load(snapshot["bids"], snapshot["asks"])
            last = last_id
            for event in kept:
                if int(event["u"]) <= last:
                    continue  # a duplicate, or an old frame arriving late
                if int(event["U"]) > last + 1:
                    return self._restart(state, None, now_ns, reason="gap inside the buffer")
                state.book.apply_update(event["b"], event["a"])
                last = state.last_u = int(event["u"])
                if (check := self._waiting_ticker(state)) is not None:
                    checks.append(check)
            state.last_u = last
        except (PrecisionError, KeyError, TypeError, ValueError) as exc:
            return self._restart(state, None, now_ns, reason=f"bad snapshot: {exc}")
        if state.book.is_crossed():
            return self._restart(state, None, now_ns, reason="crossed book after sync")
        if any(not c.is_ok for c in checks):
            return [*checks, *self._restart(state, None, now_ns, reason="bookTicker mismatch during sync")]
        state.buffer, state.snapshot, state.attempts, state.is_published = [], None, 0, True
        exchange_ns = int(kept[-1].get("E", 0)) * MS or None
        reset = BookChange(
            self.venue,
            state.spec.symbol,
            tuple(state.book.top(BID)),
            tuple(state.book.top(ASK)),
            True,
            exchange_ns,
            now_ns,
            state.last_u,
        )
        return [reset, *checks]

    def _restart(self, state: _Symbol, keep: dict[str, Any] | None, now_ns: int, *, reason: str) -> list[Output]:
        """Back to step 1: stale (if it was live), empty, buffering from `keep`, a new snapshot requested."""
        outputs: list[Output] = []
        if reason and state.is_published:
            outputs.append(BookStale(self.venue, state.spec.symbol, reason, now_ns))
        state.is_published = False
        state.book.clear()
        state.last_u, state.snapshot, state.attempts = None, None, 0
        state.buffer = [keep] if keep is not None else []
        state.tickers = {}
        return outputs + self._fetch(state)

    def _refetch(self, state: _Symbol, reason: str, now_ns: int) -> list[Output]:
        state.snapshot = None
        state.attempts += 1
        if state.attempts > MAX_SNAPSHOT_ATTEMPTS:
            return [Reconnect(f"{state.spec.venue_symbol}: {reason}, {state.attempts} snapshots in a row")]
        return self._fetch(state)

    def _fetch(self, state: _Symbol) -> list[Output]:
        state.fetch_no += 1
        name = state.spec.venue_symbol.upper()
        return [Fetch(f"{name}#{state.fetch_no}", f"/api/v3/depth?symbol={name}&limit={self.snapshot_limit}")]

    # --- cross-check and trades ------------------------------------------------------------------------

    def _on_book_ticker(self, data: dict[str, Any], now_ns: int) -> list[Output]:
        state = self._symbols.get(str(data.get("s", "")).upper())
        if state is None or not isinstance(data.get("u"), int):
            return []
        update_id = int(data["u"])
        if state.last_u is None or update_id > state.last_u:
            if len(state.tickers) < 1000:
                state.tickers[update_id] = data
            return []
        if update_id < state.last_u:
            return []  # the book moved past it in one batch: nothing to compare at that id
        return self._verdict(state, self._compare_ticker(state, data), now_ns)

    def _check_waiting_ticker(self, state: _Symbol, now_ns: int) -> list[Output]:
        return self._verdict(state, self._waiting_ticker(state), now_ns)

    def _waiting_ticker(self, state: _Symbol) -> Verified | None:
        if not state.tickers or state.last_u is None:
            return None
        last_u = state.last_u
        ticker = state.tickers.pop(last_u, None)
        state.tickers = {u: t for u, t in state.tickers.items() if u > last_u}
        return self._compare_ticker(state, ticker) if ticker is not None else None

    def _verdict(self, state: _Symbol, check: Verified | None, now_ns: int) -> list[Output]:
        if check is None:
            return []
        if check.is_ok:
            return [check]
        return [check, *self._restart(state, None, now_ns, reason=check.detail)]

    def _compare_ticker(self, state: _Symbol, data: dict[str, Any]) -> Verified:
        book = state.book
        try:
            expected = (
                (to_units(data["b"], book.price_exp), to_units(data["B"], book.size_exp)),
                (to_units(data["a"], book.price_exp), to_units(data["A"], book.size_exp)),
            )
        except PrecisionError as exc:
            return Verified(state.spec.symbol, "book_ticker", False, str(exc))
        actual = (book.best_bid(), book.best_ask())
        if actual == expected:
            return Verified(state.spec.symbol, "book_ticker", True)
        return Verified(
            state.spec.symbol, "book_ticker", False, f"top {actual} != bookTicker {expected} at u={data['u']}"
        )

    def _on_trade(self, data: dict[str, Any], now_ns: int) -> list[Output]:
        state = self._symbols.get(str(data.get("s", "")).upper())
        if state is None:
            return []
        try:
            trade = Trade(
                venue=self.venue,
                symbol=state.spec.symbol,
                trade_id=str(data.get("a", data.get("t"))),
                price=to_units(data["p"], state.spec.price_exp),
                qty=to_units(data["q"], state.spec.size_exp),
                # m: the buyer is the maker, so the seller took liquidity.
                aggressor="sell" if data["m"] else "buy",
                exchange_ts_ns=int(data["T"]) * MS,
                receive_ts_ns=now_ns,
            )
        except (PrecisionError, KeyError, TypeError, ValueError):
            return []
        return [trade]
