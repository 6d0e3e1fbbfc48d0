"""The interface through which placement and cancellation reach the paper engine, whatever its transport."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from apps.orders.domain.types import Reason
from apps.orders.services.engine.reports import ExecutionReport

if TYPE_CHECKING:
    from apps.orders.services.engine.state import EngineOrder


class EngineUnavailable(Exception):
    """No engine is running to take the command (embedded with HFT_PAPER_ENGINE off, or not started)."""

    code = "engine_unavailable"


class EngineClient(abc.ABC):
    """Commands to the engine, idempotent by order id: a re-sent command never executes an order twice.

    An order missing from a returned dict was not reported within `timeout_s`: the engine still has the
    command (or, for a submit, reloads the PENDING order at its next start) and acts on it exactly once.
    """

    def submit(self, orders: Sequence[EngineOrder], *, timeout_s: float) -> dict[UUID, ExecutionReport]:
        """Execute orders already committed as PENDING (funds locked); each one's immediate outcome.

        `orders` are the committed rows as the engine holds them (`store.placed_order`), so that it need not
        read them back: an engine in this process takes them as they are, one elsewhere gets a copy."""
        return self.send("submit", [order.id for order in orders], timeout_s=timeout_s, orders=orders)

    def submit_ids(self, order_ids: Sequence[UUID], *, timeout_s: float) -> dict[UUID, ExecutionReport]:
        """Execute committed PENDING orders known by id only (the engine reads them)."""
        return self.send("submit", order_ids, timeout_s=timeout_s)

    def cancel(self, order_ids: Sequence[UUID], *, reason: Reason, timeout_s: float) -> dict[UUID, ExecutionReport]:
        """Cancel open orders; an order already final is reported as it is (not an error)."""
        return self.send("cancel", order_ids, timeout_s=timeout_s, reason=reason)

    @abc.abstractmethod
    def send(
        self,
        op: str,
        order_ids: Sequence[UUID],
        *,
        timeout_s: float,
        reason: Reason = Reason.CANCELED_BY_CUSTOMER,
        orders: Sequence[EngineOrder] = (),
    ) -> dict[UUID, ExecutionReport]:
        """One command ("submit" or "cancel") to the engine, over this client's transport."""
