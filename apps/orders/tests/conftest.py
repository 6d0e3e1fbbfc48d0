"""Orders fixtures: a known BTC-USDT book, fixed paper grants, and the real paper engine driven in step.

`paper_engine` runs the real `EngineRuntime` on the test's own thread (each command is executed before
the call returns), so API tests see real executions inside the test's transaction. End-to-end tests with
the engine's own thread use `transaction=True` and `start_engine_thread` instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from apps.orderbook.domain.events import SNAPSHOT, BookEvent
from apps.orderbook.services.market import get_bus, get_hub
from apps.orders.domain.types import Reason
from apps.orders.services.engine import EngineClient, ExecutionReport
from apps.orders.services.engine.runtime import EngineRuntime
from apps.orders.services.engine.state import EngineOrder
from conftest import Persona, make_persona

BOOK = "consolidated:BTC-USDT"
PRICE_EXP, SIZE_EXP = 2, 4
GRANTS = {"USDT": "100000", "BTC": "2"}
# bids 64999 x 1, 64998 x 2; asks 65001 x 0.5, 65002 x 2: mid 65000. BTC-USDT's seeded rules: tick 0.01,
# lot 0.00001, minimum notional 5 USDT, band 500 bps (61750 to 68250 around this mid).
BIDS = [("64999", "1"), ("64998", "2")]
ASKS = [("65001", "0.5"), ("65002", "2")]


def publish_book(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]], book: str = BOOK) -> None:
    def level(price: str, qty: str) -> tuple[int, int]:
        return int(Decimal(price).scaleb(PRICE_EXP)), int(Decimal(qty).scaleb(SIZE_EXP))

    now = time.time_ns()
    event = BookEvent(
        book,
        0,
        SNAPSHOT,
        tuple(level(p, q) for p, q in bids),
        tuple(level(p, q) for p, q in asks),
        PRICE_EXP,
        SIZE_EXP,
        None,
        now,
        0,
    )
    get_bus().publish([event], now)


class SteppedEngineClient(EngineClient):
    """The engine client's contract over a runtime driven on the caller's thread (commands run at once)."""

    def __init__(self, runtime: EngineRuntime) -> None:
        self.runtime = runtime
        self.submitted: list[UUID] = []

    def send(
        self,
        op: str,
        order_ids: Sequence[UUID],
        *,
        timeout_s: float,
        reason: Reason = Reason.CANCELED_BY_CUSTOMER,
        orders: Sequence[EngineOrder] = (),
    ) -> dict[UUID, ExecutionReport]:
        if op == "submit":
            self.submitted.extend(order_ids)
        future = self.runtime.request(op, order_ids, reason, orders)
        self.runtime.run_pending()
        return future.result(timeout=0)


def use_engine_client(monkeypatch: pytest.MonkeyPatch, client: EngineClient) -> None:
    for module in ("apps.orders.services.placement", "apps.orders.services.cancels"):
        monkeypatch.setattr(f"{module}.engine_client", lambda: client)


@pytest.fixture
def market(db: None, settings: Any) -> None:
    """The known book on the in-process bus and fixed paper grants."""
    settings.HFT_PAPER_GRANTS = GRANTS
    settings.HFT_PAPER_START_GRACE_S = 0
    publish_book(BIDS, ASKS)


@pytest.fixture
def paper_engine(market: None, monkeypatch: pytest.MonkeyPatch) -> SteppedEngineClient:
    runtime = EngineRuntime(get_hub())
    runtime.listen()
    runtime.reload()
    client = SteppedEngineClient(runtime)
    use_engine_client(monkeypatch, client)
    return client


@pytest.fixture
def bob_trader(db: None) -> Persona:
    """Bob on the professional tier with a trading key (Alice's peer, for cross-customer tests)."""
    return make_persona("Bob Trading Desk", "professional", can_trade=True)


@pytest.fixture
def alice_enterprise(db: None) -> Persona:
    """Alice's desk on the enterprise tier (batches of up to 50)."""
    return make_persona("Alice Enterprise", "enterprise", can_trade=True)
