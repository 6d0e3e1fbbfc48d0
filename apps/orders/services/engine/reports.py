"""What the paper engine answers for an order: its state after a command, with the fills that got it there.

Both travel between processes (the Redis transport) as JSON with decimal strings, never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from apps.orders.domain.types import OrderStatus


@dataclass(frozen=True, slots=True)
class FillReport:
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: str  # "maker" | "taker"
    ts_ns: int

    def to_json(self) -> dict[str, Any]:
        return {
            "price": str(self.price),
            "quantity": str(self.quantity),
            "fee": str(self.fee),
            "fee_currency": self.fee_currency,
            "liquidity": self.liquidity,
            "ts_ns": self.ts_ns,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FillReport:
        return cls(
            Decimal(data["price"]),
            Decimal(data["quantity"]),
            Decimal(data["fee"]),
            data["fee_currency"],
            data["liquidity"],
            int(data["ts_ns"]),
        )


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """An order's state as the engine committed it, with every fill of the order so far (oldest first)."""

    order_id: UUID
    status: OrderStatus
    reason: str
    filled_quantity: Decimal
    average_price: Decimal | None
    fees: Decimal
    fills: tuple[FillReport, ...]
    version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": str(self.order_id),
            "status": self.status.value,
            "reason": self.reason,
            "filled_quantity": str(self.filled_quantity),
            "average_price": None if self.average_price is None else str(self.average_price),
            "fees": str(self.fees),
            "fills": [fill.to_json() for fill in self.fills],
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecutionReport:
        average = data["average_price"]
        return cls(
            UUID(data["order_id"]),
            OrderStatus(data["status"]),
            data["reason"],
            Decimal(data["filled_quantity"]),
            None if average is None else Decimal(average),
            Decimal(data["fees"]),
            tuple(FillReport.from_json(fill) for fill in data["fills"]),
            int(data["version"]),
        )
