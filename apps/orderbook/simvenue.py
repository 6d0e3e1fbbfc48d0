"""A simulated Binance spot venue on a local port: REST depth and exchangeInfo, diff/bookTicker/aggTrade streams.

The aiohttp shell around `domain.simulator.SimulatedMarket`. One task steps every market at `rate_per_s`
actions per second (per symbol) in ~10 ms batches, sends a bookTicker when a batch moved the top, an aggTrade
per trade, and drains one `depthUpdate` per symbol every 100 ms. Frames go out through a queue per
connection, so a slow reader is dropped instead of stalling the market.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .domain.fixedpoint import decimals_of, from_units
from .domain.simulator import WIRE_DECIMALS, SimulatedMarket

BATCH_S = 0.01
DEPTH_INTERVAL_S = 0.1
MAX_BACKLOG_S = 0.1  # after a stall, catch up at most this much simulated time instead of a burst
MAX_QUEUED_FRAMES = 50_000  # a reader this far behind is disconnected, as Binance drops slow consumers
MAX_SNAPSHOT_LIMIT = 5000
DEFAULT_PRICE_EXP = 2  # when a start mid is given as integer ticks
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
STREAM_KINDS = ("depth@100ms", "depth", "bookTicker", "aggTrade")

INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}


@dataclass
class VenueCounters:
    """Totals since start, for tests and benchmarks."""

    actions: int = 0  # simulator steps taken, all symbols
    updates: int = 0  # book update ids consumed (one per level change)
    trades: int = 0
    depth_events: int = 0
    frames_sent: int = 0
    slow_disconnects: int = 0


class _Feed:
    """One symbol: its market and the stream names its events go out on."""

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        low = market.symbol.lower()
        self.depth_streams = (f"{low}@depth@100ms", f"{low}@depth")
        self.ticker_stream = f"{low}@bookTicker"
        self.trade_stream = f"{low}@aggTrade"


class _Connection:
    """One WebSocket client: its streams and its outgoing queue, written by its own task."""

    def __init__(self, ws: web.WebSocketResponse, *, is_combined: bool) -> None:
        self.ws = ws
        self.is_combined = is_combined
        self.streams: set[str] = set()
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None
        self.is_slow = False

    def push(self, stream: str, payload: str) -> None:
        if self.is_slow:
            return
        if len(self.queue) >= MAX_QUEUED_FRAMES:
            self.is_slow = True
            self.wake.set()
            return
        self.queue.append(f'{{"stream":"{stream}","data":{payload}}}' if self.is_combined else payload)
        self.wake.set()


class SimulatedVenue:
    """Serve simulated markets (`{"BTCUSDT": "65000.00"}`: symbol → start mid) the way Binance spot does.

    A start mid given as text sets the price decimals ("65000.00" → tick 0.01); integer ticks use 2.
    """

    def __init__(
        self,
        symbols: Mapping[str, str | Decimal | int],
        *,
        rate_per_s: float,
        seed: int | None = None,
        size_exp: int = 6,
        levels: int = 200,
        heartbeat_s: float = 20.0,
    ) -> None:
        if rate_per_s < 0:
            raise ValueError("rate_per_s must not be negative")
        self.rate_per_s = rate_per_s
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
        self.counters = VenueCounters()
        self._heartbeat_s = heartbeat_s
        self._feeds: dict[str, _Feed] = {}
        for symbol, mid in symbols.items():
            price_exp = DEFAULT_PRICE_EXP if isinstance(mid, int) else decimals_of(str(mid))
            market = SimulatedMarket(
                symbol,
                mid_price=mid,
                tick_size_exp=price_exp,
                size_exp=size_exp,
                levels=levels,
                rng=random.Random(f"{self.seed}/{symbol.upper()}"),
            )
            self._feeds[market.symbol] = _Feed(market)
        self._subscribers: dict[str, set[_Connection]] = {}
        self._connections: set[_Connection] = set()
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.is_paused = False

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (port 0 picks a free one) and start the market; returns the port."""
        app = web.Application()
        app.router.add_get("/api/v3/depth", self._rest_depth)
        app.router.add_get("/api/v3/exchangeInfo", self._rest_exchange_info)
        app.router.add_get("/api/v3/ping", self._rest_ping)
        app.router.add_get("/api/v3/time", self._rest_time)
        app.router.add_get("/stream", self._ws_combined)
        app.router.add_get("/ws/{streams:.+}", self._ws_raw)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._task = asyncio.create_task(self._run(), name="simvenue-market")
        address = self._runner.addresses[0]
        return int(address[1])

    async def stop(self) -> None:
        """Stop the market, announce `serverShutdown` like Binance, close every connection and the listener."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        notice = orjson.dumps({"e": "serverShutdown", "E": time.time_ns() // 1_000_000}).decode()
        for conn in list(self._connections):
            if conn.writer is not None:
                conn.writer.cancel()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(notice)
            await conn.ws.close(code=1001, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def pause(self) -> None:
        """Stop taking actions; changes already made still go out with the next depth drain."""
        self.is_paused = True

    def resume(self) -> None:
        self.is_paused = False

    @property
    def symbols(self) -> list[str]:
        return list(self._feeds)

    def market(self, symbol: str) -> SimulatedMarket:
        return self._feeds[symbol.upper()].market

    # --- the market loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        next_depth = last + DEPTH_INTERVAL_S
        credit = 0.0
        while True:
            await asyncio.sleep(BATCH_S)
            now, rate = loop.time(), self.rate_per_s
            elapsed, last = now - last, now
            credit = 0.0 if self.is_paused else min(credit + elapsed * rate, rate * MAX_BACKLOG_S)
            actions = int(credit)
            credit -= actions
            now_ns = time.time_ns()  # venue event times are wall-clock epoch ms, as on Binance
            if actions:
                for feed in self._feeds.values():
                    self._step(feed, actions, now_ns)
            if now >= next_depth:
                next_depth += DEPTH_INTERVAL_S
                if next_depth <= now:  # fell behind (a stall): restart the cadence rather than burst
                    next_depth = now + DEPTH_INTERVAL_S
                for feed in self._feeds.values():
                    self._publish_depth(feed, now_ns // 1_000_000)

    def _step(self, feed: _Feed, actions: int, now_ns: int) -> None:
        market = feed.market
        top_before, id_before = market.top(), market.last_update_id
        trade_subscribers = self._subscribers.get(feed.trade_stream)
        step = market.step
        for _ in range(actions):
            trades = step(now_ns)
            if trades:
                self.counters.trades += len(trades)
                if trade_subscribers:
                    for trade in trades:
                        self._publish(trade_subscribers, feed.trade_stream, orjson.dumps(trade).decode())
        self.counters.actions += actions
        self.counters.updates += market.last_update_id - id_before
        ticker_subscribers = self._subscribers.get(feed.ticker_stream)
        if ticker_subscribers and market.top() != top_before:
            self._publish(ticker_subscribers, feed.ticker_stream, orjson.dumps(market.book_ticker()).decode())

    def _publish_depth(self, feed: _Feed, now_ms: int) -> None:
        # Drained whether anyone listens or not, so every subscriber sees one gap-free id sequence.
        event = feed.market.drain_depth_update(now_ms)
        if event is None:
            return
        self.counters.depth_events += 1
        payload: str | None = None
        for stream in feed.depth_streams:
            subscribers = self._subscribers.get(stream)
            if subscribers:
                payload = payload or orjson.dumps(event).decode()
                self._publish(subscribers, stream, payload)

    def _publish(self, subscribers: set[_Connection], stream: str, payload: str) -> None:
        for conn in subscribers:
            conn.push(stream, payload)

    # --- WebSocket -------------------------------------------------------------------------------------

    async def _ws_combined(self, request: web.Request) -> web.StreamResponse:
        names = [name for name in request.query.get("streams", "").split("/") if name]
        return await self._serve_ws(request, names, is_combined=True)

    async def _ws_raw(self, request: web.Request) -> web.StreamResponse:
        names = [name for name in request.match_info["streams"].split("/") if name]
        return await self._serve_ws(request, names, is_combined=False)

    async def _serve_ws(self, request: web.Request, names: list[str], *, is_combined: bool) -> web.StreamResponse:
        invalid = [name for name in names if not self._is_stream(name)]
        if invalid:
            return web.json_response({"code": -1121, "msg": f"Invalid stream: {invalid[0]}"}, status=400)
        ws = web.WebSocketResponse(heartbeat=self._heartbeat_s, timeout=1.0)
        await ws.prepare(request)
        conn = _Connection(ws, is_combined=is_combined)
        for name in names:
            self._subscribe(conn, name)
        self._connections.add(conn)
        conn.writer = asyncio.create_task(self._write(conn))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    reply = self._on_client_request(conn, message.data)
                    conn.queue.append(orjson.dumps(reply).decode())
                    conn.wake.set()
        finally:
            for name in list(conn.streams):
                self._unsubscribe(conn, name)
            self._connections.discard(conn)
            if conn.writer is not None:
                conn.writer.cancel()
        return ws

    async def _write(self, conn: _Connection) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not conn.ws.closed:
                await conn.wake.wait()
                conn.wake.clear()
                if conn.is_slow:
                    self.counters.slow_disconnects += 1
                    await conn.ws.close(code=1008, message=b"slow consumer")
                    return
                while conn.queue:
                    await conn.ws.send_str(conn.queue.popleft())
                    self.counters.frames_sent += 1

    def _on_client_request(self, conn: _Connection, text: str) -> dict[str, Any]:
        """Binance's live subscription requests: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS."""
        try:
            request = orjson.loads(text)
            method, request_id = request["method"], request.get("id")
            params = request.get("params", [])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return {"error": {"code": 2, "msg": "Invalid request"}, "id": None}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.streams), "id": request_id}
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            return {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": request_id}
        bad = [name for name in params if not isinstance(name, str) or not self._is_stream(name)]
        if bad:
            return {"error": {"code": 2, "msg": f"Invalid stream: {bad[0]}"}, "id": request_id}
        for name in params:
            (self._subscribe if method == "SUBSCRIBE" else self._unsubscribe)(conn, name)
        return {"result": None, "id": request_id}

    def _is_stream(self, name: str) -> bool:
        symbol, _, kind = name.partition("@")
        return symbol == symbol.lower() and symbol.upper() in self._feeds and kind in STREAM_KINDS

    def _subscribe(self, conn: _Connection, name: str) -> None:
        conn.streams.add(name)
        self._subscribers.setdefault(name, set()).add(conn)

    def _unsubscribe(self, conn: _Connection, name: str) -> None:
        conn.streams.discard(name)
        subscribers = self._subscribers.get(name)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self._subscribers[name]

    # --- REST ------------------------------------------------------------------------------------------

    async def _rest_depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if not symbol:
            return _json_error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        feed = self._feeds.get(symbol.upper())
        if feed is None:
            return _json(INVALID_SYMBOL, status=400)
        limit_text = request.query.get("limit", "100")
        if not limit_text.isdigit() or int(limit_text) < 1:
            return _json_error(-1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
        return _json(feed.market.snapshot(min(int(limit_text), MAX_SNAPSHOT_LIMIT)))

    async def _rest_exchange_info(self, request: web.Request) -> web.Response:
        wanted = request.query.get("symbol")
        feeds = list(self._feeds.values())
        if wanted is not None:
            feeds = [feed for feed in feeds if feed.market.symbol == wanted.upper()]
            if not feeds:
                return _json(INVALID_SYMBOL, status=400)
        return _json(
            {
                "timezone": "UTC",
                "serverTime": time.time_ns() // 1_000_000,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [_symbol_info(feed.market) for feed in feeds],
            }
        )

    async def _rest_ping(self, request: web.Request) -> web.Response:
        return _json({})

    async def _rest_time(self, request: web.Request) -> web.Response:
        return _json({"serverTime": time.time_ns() // 1_000_000})


def _symbol_info(market: SimulatedMarket) -> dict[str, Any]:
    base, quote = split_symbol(market.symbol)
    tick, step = _unit_text(market.tick_size_exp), _unit_text(market.size_exp)
    return {
        "symbol": market.symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": WIRE_DECIMALS,
        "quoteAsset": quote,
        "quotePrecision": WIRE_DECIMALS,
        "quoteAssetPrecision": WIRE_DECIMALS,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
        ],
    }


def split_symbol(symbol: str) -> tuple[str, str]:
    """Split "BTCUSDT" into ("BTC", "USDT") by the longest known quote asset; otherwise 3 letters + the rest."""
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:3], symbol[3:]


def _unit_text(exp: int) -> str:
    """One unit at `exp` decimals in Binance's 8-decimal text: 2 → "0.01000000"."""
    text = from_units(1, exp)
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(WIRE_DECIMALS, '0')}"


def _json(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _json_error(code: int, msg: str) -> web.Response:
    return _json({"code": code, "msg": msg}, status=400)
