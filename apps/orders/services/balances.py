"""Paper balances: the rows of a customer's funds, locked for update, held at placement and written back.

Every change goes through a `Ledger`: the balance rows of some customers read once `FOR UPDATE` (so two
writers of one customer's funds serialise), changed in memory, and written back with one bulk UPDATE.
Callers must be inside `transaction.atomic()`. An order remembers what it holds (`locked_amount` in
`locked_currency`), so releasing at the end is exact whatever prices it filled at. The engine settles
fills (the rules are `apps/orders/domain/balances.py`) and releases ends into the same rows.

A currency's row is created on first use with the paper grant of `HFT_PAPER_GRANTS` (a customer starts
with play money once per currency; staff adjust balances in admin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection

from apps.orders.models import Balance

if TYPE_CHECKING:
    from apps.orders.models import Order

ZERO = Decimal(0)
DEFAULT_GRANTS = {"USDT": "100000", "USDC": "100000", "USD": "100000", "EUR": "100000", "BTC": "2", "ETH": "20"}


def paper_grant(currency: str) -> Decimal:
    grants: Mapping[str, str] = getattr(settings, "HFT_PAPER_GRANTS", DEFAULT_GRANTS)
    return Decimal(grants.get(currency, "0"))


class InsufficientFunds(Exception):
    """A lock asked for more than is available (the placement service turns it into a reason code)."""


class Ledger:
    """Balance rows of some customers, locked for update; `save()` writes every changed row at once."""

    def __init__(self, rows: Iterable[Balance]) -> None:
        self.rows: dict[tuple[int, str], Balance] = {(row.customer_id, row.currency): row for row in rows}
        self._changed: set[tuple[int, str]] = set()

    @classmethod
    def lock(cls, wanted: Iterable[tuple[int, str]]) -> Ledger:
        """Rows for (customer id, currency) pairs, created with their grant when missing; 1 query when all
        exist, 3 the first time (select, insert, select)."""
        pairs = set(wanted)
        if not pairs:
            return cls([])
        rows = _select_for_update(pairs)
        missing = pairs - {(row.customer_id, row.currency) for row in rows}
        if missing:
            Balance.objects.bulk_create(
                [Balance(customer_id=c, currency=cur, available=paper_grant(cur)) for c, cur in sorted(missing)],
                ignore_conflicts=True,  # a concurrent first use created it: ours is simply not inserted
            )
            rows = _select_for_update(pairs)
        return cls(rows)

    def row(self, customer_id: int, currency: str) -> Balance:
        self._changed.add((customer_id, currency))
        return self.rows[(customer_id, currency)]

    def available(self, customer_id: int, currency: str) -> Decimal:
        available: Decimal = self.rows[(customer_id, currency)].available
        return available

    def hold(self, order: Order, currency: str, amount: Decimal) -> None:
        """Move `amount` from available to locked for `order`; InsufficientFunds leaves everything as it was."""
        row = self.row(order.customer_id, currency)
        if amount > row.available:
            raise InsufficientFunds(f"{currency}: {amount} needed, {row.available} available")
        row.available -= amount
        row.locked += amount
        order.locked_currency = currency
        order.locked_amount = amount

    def release(self, order: Order) -> Decimal:
        """Return what `order` still holds to available (it has ended); the amount released."""
        amount: Decimal = order.locked_amount
        if amount and order.locked_currency:
            row = self.row(order.customer_id, order.locked_currency)
            row.locked -= amount
            row.available += amount
        order.locked_amount = ZERO
        return amount

    def save(self) -> None:
        changed = [self.rows[key] for key in sorted(self._changed)]
        if changed and connection.vendor == "postgresql":
            _update_rows(changed)
        elif changed:
            Balance.objects.bulk_update(changed, ["available", "locked"])
        self._changed.clear()


def _update_rows(rows: list[Balance]) -> None:
    """One `UPDATE ... FROM unnest(ids, available, locked)`: three array parameters whatever the number of
    rows (Django's bulk_update builds a CASE per row and field, which cost more than the write itself)."""
    table = connection.ops.quote_name(Balance._meta.db_table)
    sql = (
        f"UPDATE {table} AS b SET available = v.available, locked = v.locked "  # noqa: S608 - our table name
        "FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[]) AS v(id, available, locked) WHERE b.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [[r.pk for r in rows], [r.available for r in rows], [r.locked for r in rows]])


def _select_for_update(pairs: set[tuple[int, str]]) -> list[Balance]:
    customers = {c for c, _ in pairs}
    currencies = {cur for _, cur in pairs}
    # One query for the lot; ordered so concurrent lockers take row locks in the same order (no deadlock).
    query = Balance.objects.select_for_update().filter(customer_id__in=customers, currency__in=currencies)
    return [row for row in query.order_by("customer_id", "currency") if (row.customer_id, row.currency) in pairs]
