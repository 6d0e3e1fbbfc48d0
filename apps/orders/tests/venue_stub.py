"""A loopback stub of Binance spot's signed order endpoints, for the live adapter's tests.

It checks what Binance checks (a known API key, the HMAC signature over the exact query string plus body,
the timestamp inside recvWindow), keeps orders by client order id per API key, and does per order what a
test tells it: fill (all or part), rest, reject with a Binance error code, answer only after a delay (the
order IS created: the client's timeout case), or drop (never created, never answered in time).
Runs on its own event loop in a thread, so synchronous tests and `async_to_sync` callers can both use it.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import itertools
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

OPEN = {"NEW", "PARTIALLY_FILLED"}


@dataclass(frozen=True)
class Plan:
    """What the stub does with one new order. Build with the helpers below."""

    action: str  # "fill" | "rest" | "reject" | "drop"
    fill_quantity: Decimal | None = None  # None with "fill": all of it
    code: int = 0
    message: str = ""
    delay_s: float = 0.0  # answer (or, for "drop", hang up) only after this long


def fill(quantity: str | None = None, *, delay_s: float = 0.0) -> Plan:
    return Plan("fill", None if quantity is None else Decimal(quantity), delay_s=delay_s)


def rest(*, delay_s: float = 0.0) -> Plan:
    return Plan("rest", delay_s=delay_s)


def reject(code: int, message: str) -> Plan:
    return Plan("reject", code=code, message=message)


def drop(delay_s: float) -> Plan:
    return Plan("drop", delay_s=delay_s)


@dataclass
class StubOrder:
    order_id: int
    api_key: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    quantity: Decimal
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    trades: list[dict[str, Any]] = field(default_factory=list)
    created_ms: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": f"{self.price:.8f}",
            "origQty": f"{self.quantity:.8f}",
            "executedQty": f"{self.executed:.8f}",
            "cummulativeQuoteQty": f"{self.quote:.8f}",
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "time": self.created_ms,
            "updateTime": self.created_ms,
        }


class BinanceStub:
    """`start()` answers the base URL; `accounts` maps API key -> secret."""

    def __init__(self, accounts: dict[str, str], *, market_price: str = "50000", commission_asset: str = "USDT"):
        self.accounts = accounts
        self.market_price = Decimal(market_price)
        self.commission_asset = commission_asset
        self.commission_rate = Decimal("0.001")
        self.plans: dict[str, Plan] = {}
        self.next_plans: collections.deque[Plan] = collections.deque()  # for orders without their own plan
        self.orders: dict[tuple[str, str], StubOrder] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params) of every request
        self._ids = itertools.count(1000)
        self._trade_ids = itertools.count(5000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- control -------------------------------------------------------------------------------------
    def plan(self, client_order_id: str, plan: Plan) -> None:
        self.plans[client_order_id] = plan

    def plan_next(self, plan: Plan) -> None:
        """The plan of the next new order that has none of its own (an order placed through the API gets its
        venue client id only when placed, and may reach the stub before the test could name it)."""
        self.next_plans.append(plan)

    def placed(self, client_order_id: str) -> int:
        """How many orders exist with this client order id, across API keys (1 = never duplicated)."""
        return sum(1 for (_, cid) in self.orders if cid == client_order_id)

    def posts(self, client_order_id: str) -> int:
        """How many new-order requests carried this client order id (whether created or not)."""
        return sum(
            1
            for method, _, params in self.requests
            if method == "POST" and params.get("newClientOrderId") == client_order_id
        )

    def order(self, client_order_id: str) -> StubOrder:
        return next(order for (_, cid), order in self.orders.items() if cid == client_order_id)

    def start(self) -> str:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="binance-stub", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Binance stub did not start")
        return self.base_url

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # --- server --------------------------------------------------------------------------------------
    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_post("/api/v3/order", self._new_order)
        app.router.add_get("/api/v3/order", self._query_order)
        app.router.add_delete("/api/v3/order", self._cancel_order)
        app.router.add_get("/api/v3/myTrades", self._my_trades)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still sleeping out a delay or a drop: end them, so the loop closes with nothing pending.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _authenticate(self, request: web.Request) -> tuple[str, dict[str, str]] | web.Response:
        """The API key and parameters of a signed request, or Binance's error answer."""
        query = request.rel_url.raw_query_string
        body = (await request.read()).decode()
        total = query + body  # Binance signs the query string concatenated with the body
        params = dict(parse_qsl(total))
        self.requests.append((request.method, request.path, params))
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if api_key not in self.accounts:
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload, _, signature = total.rpartition("&signature=")
        expected = hmac.new(self.accounts[api_key].encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature.lower(), expected):
            return _error(400, -1022, "Signature for this request is not valid.")
        now_ms = time.time_ns() // 1_000_000
        timestamp, window = int(params.get("timestamp", "0")), int(params.get("recvWindow", "5000"))
        if not (timestamp < now_ms + 1000 and now_ms - timestamp <= window):
            return _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return api_key, params

    async def _new_order(self, request: web.Request) -> web.StreamResponse:
        checked = await self._authenticate(request)
        if isinstance(checked, web.Response):
            return checked
        api_key, params = checked
        client_id = params["newClientOrderId"]
        plan = self.plans.get(client_id)
        if plan is None:
            plan = self.next_plans.popleft() if self.next_plans else fill() if params["type"] == "MARKET" else rest()
            self.plans[client_id] = plan
        if plan.action == "reject":
            return _error(400, plan.code, plan.message)
        if plan.action == "drop":
            await asyncio.sleep(plan.delay_s)
            if request.transport is not None:
                request.transport.close()  # hang up: no answer, no order
            return web.Response(status=503)
        existing = self.orders.get((api_key, client_id))
        if existing is not None and existing.status in OPEN:
            return _error(400, -2010, "Duplicate order sent.")
        order = self._create(api_key, params)
        fills = self._execute(order, plan)
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)  # created, then silent past the client's timeout
        return web.json_response({**order.body(), "transactTime": order.created_ms, "fills": fills})

    async def _query_order(self, request: web.Request) -> web.Response:
        checked = await self._authenticate(request)
        if isinstance(checked, web.Response):
            return checked
        api_key, params = checked
        order = self.orders.get((api_key, params.get("origClientOrderId", "")))
        if order is None:
            return _error(400, -2013, "Order does not exist.")
        return web.json_response(order.body())

    async def _cancel_order(self, request: web.Request) -> web.Response:
        checked = await self._authenticate(request)
        if isinstance(checked, web.Response):
            return checked
        api_key, params = checked
        order = self.orders.get((api_key, params.get("origClientOrderId", "")))
        if order is None or order.status not in OPEN:
            return _error(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        return web.json_response({**order.body(), "origClientOrderId": order.client_order_id})

    async def _my_trades(self, request: web.Request) -> web.Response:
        checked = await self._authenticate(request)
        if isinstance(checked, web.Response):
            return checked
        api_key, params = checked
        wanted = int(params["orderId"])
        trades = [t for o in self.orders.values() if o.api_key == api_key and o.order_id == wanted for t in o.trades]
        return web.json_response(trades)

    # --- matching ------------------------------------------------------------------------------------
    def _create(self, api_key: str, params: dict[str, str]) -> StubOrder:
        order = StubOrder(
            order_id=next(self._ids),
            api_key=api_key,
            client_order_id=params["newClientOrderId"],
            symbol=params["symbol"],
            side=params["side"],
            type=params["type"],
            time_in_force=params.get("timeInForce", "GTC"),
            price=Decimal(params.get("price", "0")),
            quantity=Decimal(params["quantity"]),
            created_ms=time.time_ns() // 1_000_000,
        )
        self.orders[(api_key, order.client_order_id)] = order
        return order

    def _execute(self, order: StubOrder, plan: Plan) -> list[dict[str, Any]]:
        """Apply the plan's immediate fill; the remainder rests (GTC, LIMIT_MAKER) or expires (IOC, FOK, market)."""
        quantity = Decimal(0) if plan.action == "rest" else plan.fill_quantity or order.quantity
        fills = []
        if quantity > 0:
            price = order.price if order.type != "MARKET" else self.market_price
            fills.append(self.trade(order, price, quantity, is_maker=False))
        if order.executed == order.quantity:
            order.status = "FILLED"
        elif order.type == "MARKET" or order.time_in_force in {"IOC", "FOK"}:
            order.status = "EXPIRED"
        elif order.executed > 0:
            order.status = "PARTIALLY_FILLED"
        return fills

    def trade(self, order: StubOrder, price: Decimal, quantity: Decimal, *, is_maker: bool) -> dict[str, Any]:
        """Record one execution of `order` (tests call it to fill a resting order later); its FULL-response fill."""
        commission = (price * quantity * self.commission_rate).quantize(Decimal("1e-8"))
        trade_id = next(self._trade_ids)
        order.executed += quantity
        order.quote += price * quantity
        if order.executed == order.quantity:
            order.status = "FILLED"
        elif order.status == "NEW":
            order.status = "PARTIALLY_FILLED"
        order.trades.append(
            {
                "symbol": order.symbol,
                "id": trade_id,
                "orderId": order.order_id,
                "price": f"{price:.8f}",
                "qty": f"{quantity:.8f}",
                "quoteQty": f"{price * quantity:.8f}",
                "commission": f"{commission:.8f}",
                "commissionAsset": self.commission_asset,
                "time": time.time_ns() // 1_000_000,
                "isBuyer": order.side == "BUY",
                "isMaker": is_maker,
                "isBestMatch": True,
            }
        )
        return {
            "price": f"{price:.8f}",
            "qty": f"{quantity:.8f}",
            "commission": f"{commission:.8f}",
            "commissionAsset": self.commission_asset,
            "tradeId": trade_id,
        }


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message}, status=status)


# --- helpers for the live adapter's tests ---------------------------------------------------------------
ALICE_API_KEY, ALICE_API_SECRET = "alice-binance-key", "alice-binance-secret-0123456789"
BOB_API_KEY, BOB_API_SECRET = "bob-binance-key", "bob-binance-secret-9876543210"


def serve_binance(settings: Any, *, timeout_s: float = 0.5) -> BinanceStub:
    """A started stub knowing alice's and bob's keys, with settings pointing the "binance" adapter at it."""
    stub = BinanceStub({ALICE_API_KEY: ALICE_API_SECRET, BOB_API_KEY: BOB_API_SECRET})
    base_url = stub.start()
    settings.HFT_LIVE_VENUES = {"binance": {"adapter": "binance_spot", "base_url": base_url}}
    settings.HFT_LIVE_TIMEOUT_S = timeout_s
    return stub


def run_live(function: Any, *args: Any) -> Any:
    """Await a live-adapter coroutine function from a synchronous test (ORM on this thread), then close the
    adapter connections of that short-lived event loop."""
    from asgiref.sync import async_to_sync

    from apps.orders.services.live.service import aclose_adapters

    async def call() -> Any:
        try:
            return await function(*args)
        finally:
            await aclose_adapters()

    return async_to_sync(call)()
