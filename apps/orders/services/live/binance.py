"""The Binance spot adapter: signed REST calls over aiohttp (`/api/v3/order`, `/api/v3/myTrades`).

A request is sent once. Silence, a dropped connection after connecting, an HTTP 5xx or Binance's
"execution status unknown" codes raise `VenueTimeout` (the order may exist); a refused connection or a rate
limit (429/418) raises `VenueUnavailable` (it certainly does not). The wire format lives in `binance_wire`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from yarl import URL

from apps.orders.domain.types import OrderStatus, Reason
from apps.orders.services.engine.reports import FillReport
from apps.orders.services.live import binance_wire as wire
from apps.orders.services.live.adapter import VenueAdapter
from apps.orders.services.live.errors import LiveVenueError, VenueProtocolError, VenueTimeout, VenueUnavailable
from apps.orders.services.live.types import LiveOrder, VenueCredentials, VenueOutcome

RATE_LIMITED_STATUSES = frozenset({418, 429})


class BinanceSpotAdapter(VenueAdapter):
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        recv_window_ms: int,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.recv_window_ms = recv_window_ms
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        # aiohttp sessions belong to one event loop: one kept-alive session per loop that uses the adapter.
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )

    def default_symbol(self, symbol: str) -> str:
        return symbol.replace("-", "").replace("/", "").upper()

    async def place(self, order: LiveOrder, venue_symbol: str, credentials: VenueCredentials) -> VenueOutcome:
        params = wire.order_params(order, venue_symbol)
        if params is None:
            return _refused(Reason.UNSUPPORTED_ORDER)
        try:
            body = await self._call("POST", wire.ORDER_PATH, params, credentials)
        except wire.BinanceError as error:
            return wire.rejected_outcome(error)
        return wire.order_outcome(order, body, wire.response_fills(body), wire.response_trade_ids(body))

    async def cancel(self, order: LiveOrder, venue_symbol: str, credentials: VenueCredentials) -> VenueOutcome:
        try:
            body = await self._call("DELETE", wire.ORDER_PATH, wire.lookup_params(order, venue_symbol), credentials)
        except wire.BinanceError as error:
            if error.code != wire.UNKNOWN_ORDER_SENT:
                raise _venue_error(error) from error
            # Not cancelable: already done (filled, expired) or never there. Its state answers the cancel.
            outcome = await self.query(order, venue_symbol, credentials)
            if outcome is None:
                raise LiveVenueError("the venue does not know this order", detail={"venue_code": error.code}) from None
            return outcome
        return wire.order_outcome(order, body, *await self._fills_of(body, venue_symbol, credentials))

    async def query(self, order: LiveOrder, venue_symbol: str, credentials: VenueCredentials) -> VenueOutcome | None:
        try:
            body = await self._call("GET", wire.ORDER_PATH, wire.lookup_params(order, venue_symbol), credentials)
        except wire.BinanceError as error:
            if error.code == wire.ORDER_DOES_NOT_EXIST:
                return None
            raise _venue_error(error) from error
        return wire.order_outcome(order, body, *await self._fills_of(body, venue_symbol, credentials))

    async def aclose(self) -> None:
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    async def _fills_of(
        self, body: Mapping[str, Any], venue_symbol: str, credentials: VenueCredentials
    ) -> tuple[tuple[FillReport, ...], tuple[str, ...]]:
        if Decimal(str(body.get("executedQty", "0"))) <= 0:
            return (), ()
        params = [("symbol", venue_symbol), ("orderId", str(body["orderId"]))]
        try:
            trades = await self._call("GET", wire.TRADES_PATH, params, credentials)
        except wire.BinanceError as error:
            raise _venue_error(error) from error
        if not isinstance(trades, list):
            raise VenueProtocolError("myTrades did not answer a list")
        return wire.trade_fills(trades)

    async def _call(
        self, method: str, path: str, params: Sequence[tuple[str, str]], credentials: VenueCredentials
    ) -> Any:
        query = wire.signed_query(
            params, credentials.secret, timestamp_ms=self.clock_ms(), recv_window_ms=self.recv_window_ms
        )
        headers = {"X-MBX-APIKEY": credentials.api_key}
        if method == "POST":
            url, data = URL(self.base_url + path), query.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            # encoded=True: the query goes out byte for byte as signed, never re-quoted by yarl.
            url, data = URL(f"{self.base_url}{path}?{query}", encoded=True), None
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._session().request(method, url, data=data, headers=headers) as response:
                    status, raw = response.status, await response.read()
        except TimeoutError as exc:
            raise VenueTimeout(f"no answer from {self.base_url} within {self.timeout_s} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise VenueUnavailable(f"cannot connect to {self.base_url}: {exc}") from exc
        except aiohttp.ClientError as exc:  # connected, maybe sent: the outcome is unknown
            raise VenueTimeout(f"connection to {self.base_url} failed mid-request: {exc}") from exc
        return _read(status, raw)

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
            self._sessions[loop] = session
        return session


def _read(status: int, raw: bytes) -> Any:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if status in RATE_LIMITED_STATUSES:
        raise VenueUnavailable(f"rate limited by the venue (HTTP {status})", detail=body)
    if status >= 500:
        # Binance: a 5xx "is NOT a failure; the execution status is UNKNOWN and could have been a success".
        raise VenueTimeout(f"venue HTTP {status}: execution status unknown", detail=body)
    if isinstance(body, dict) and isinstance(body.get("code"), int) and status >= 400:
        if body["code"] in wire.UNKNOWN_EXECUTION_CODES:
            raise VenueTimeout(f"venue {body['code']}: {body.get('msg', '')}", detail=body)
        raise wire.BinanceError(status, body["code"], str(body.get("msg", "")))
    if status >= 400 or body is None:
        raise VenueProtocolError(f"unexpected venue answer (HTTP {status})", detail=raw[:200].decode(errors="replace"))
    return body


def _venue_error(error: wire.BinanceError) -> LiveVenueError:
    reason = wire.rejection_reason(error.code, error.message)
    failure = LiveVenueError(error.message, detail={"venue_code": error.code, "reason": reason.value})
    failure.code = reason.value if reason != Reason.VENUE_REJECTED else "venue_error"
    return failure


def _refused(reason: Reason) -> VenueOutcome:
    return VenueOutcome(
        status=OrderStatus.REJECTED,
        reason=reason.value,
        venue_order_id="",
        filled_quantity=Decimal(0),
        average_price=None,
        fees=Decimal(0),
        fee_currency="",
    )
