"""Order entry: validate, risk-check, lock funds, record, and hand to the execution engine; idempotent.

One batch costs a constant number of SQL queries whatever its size: instruments with their rules, the
tier's fees, the balance rows `FOR UPDATE`, the customer's existing orders by `client_order_id`, one
INSERT ... ON CONFLICT DO NOTHING RETURNING id (elsewhere than PostgreSQL: bulk_create and a read-back),
one bulk UPDATE of balances.

Rules (docs/orders.md):
- Idempotency: a `client_order_id` the customer already used returns that order (`duplicate`), creating
  nothing, whatever the rest of the request says. Concurrent retries serialise on the customer's balance
  rows; where they do not (different currencies), the unique constraint decides and the loser reads back
  the winner's order and releases what it had locked.
- Non-atomic: each order stands alone; one that fails a rule is recorded REJECTED with its reason, so
  its retry is idempotent too. An unknown instrument cannot be recorded (an order needs one): it is
  answered REJECTED `unknown_instrument` without an id.
- Atomic: all or none. If any new order fails, nothing is written; it carries its reason and every other
  new order `atomic_batch_failed`.
- `validate_only`: the same checks, balance included, and nothing is written.
- Paper orders are priced against the consolidated book of their instrument (`HFT_PAPER_BOOK_VENUE`),
  the book the paper engine executes them on; live-venue orders against their venue's book when this
  process has it, else the consolidated one. Live orders lock no paper balance (the venue holds funds).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.orderbook.domain.events import book_id
from apps.orderbook.models import Instrument
from apps.orderbook.services.market import get_hub
from apps.orders.domain.types import OrderRequest, OrderStatus, Reason
from apps.orders.domain.validation import InstrumentRules, check_order, required_funds
from apps.orders.exceptions import BatchTooLarge, DuplicateClientOrderId
from apps.orders.models import PAPER_VENUE, Balance, FeeSchedule, Order, VenueCredential
from apps.orders.services.balances import InsufficientFunds, Ledger, paper_grant
from apps.orders.services.engine import EngineUnavailable, ExecutionReport, FillReport, engine_client
from apps.orders.services.engine.state import EngineOrder
from apps.orders.services.engine.store import placed_order
from apps.orders.services.live import live_venues
from apps.orders.services.rules import instrument_rules
from apps.orders.services.updates import audience, order_update, publish_order_updates
from apps.tiers.services.auth import Principal

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
VALIDATED = "VALIDATED"  # the status of a validate_only order that passed every check


@dataclass(frozen=True, slots=True)
class PlacementResult:
    """One order's outcome, in request order. `order` is None when nothing was (or could be) recorded."""

    client_order_id: str
    status: str  # an OrderStatus, or VALIDATED
    reason: str | None
    order: Order | None = None
    fills: tuple[FillReport, ...] = ()
    is_duplicate: bool = False

    @property
    def is_accepted(self) -> bool:
        """Placed (or, validate_only, would be); a retry of a rejected order is still a rejection."""
        return self.status != OrderStatus.REJECTED


@dataclass(frozen=True, slots=True)
class _Market:
    rules: Mapping[str, InstrumentRules]
    instrument_ids: Mapping[str, int]
    taker_fee_bps: Decimal
    venues: frozenset[str]
    credentials: frozenset[str]  # live venues for which the customer has stored credentials


def place_orders(
    principal: Principal, requests: Sequence[OrderRequest], *, atomic: bool = False, validate_only: bool = False
) -> list[PlacementResult]:
    """Place a batch (or one order) for the principal's customer; results in request order."""
    check_batch(principal, requests)
    market = _load_market(principal, requests)
    if validate_only:
        results = _validate_only(principal, requests, market)
        return _atomic_failure(results) if atomic and _any_rejected(results) else results
    with transaction.atomic():
        results, created = _record(principal, requests, market, atomic=atomic)
    if created and audience([principal.customer_id]):
        publish_order_updates([order_update(o) for o in created])
    return _submit(results, _engine_orders(principal, market, created))


def check_batch(principal: Principal, requests: Sequence[OrderRequest]) -> None:
    """The tier's batch size (a tier without batches may still send one order) and unique client ids."""
    cap = principal.tier.max_batch_size or 1
    if len(requests) > cap:
        raise BatchTooLarge(
            f"Your tier allows at most {cap} orders per batch.", detail={"max_batch_size": cap, "sent": len(requests)}
        )
    seen: set[str] = set()
    for request in requests:
        if request.client_order_id in seen:
            raise DuplicateClientOrderId(
                f"client_order_id {request.client_order_id!r} appears twice in the request.",
                detail={"client_order_id": request.client_order_id},
            )
        seen.add(request.client_order_id)


# --- reference data and checks ------------------------------------------------------------------------


def _load_market(principal: Principal, requests: Sequence[OrderRequest]) -> _Market:
    symbols = {r.symbol for r in requests}
    instruments = Instrument.objects.filter(symbol__in=symbols).select_related("trading_rules")
    rules: dict[str, InstrumentRules] = {}
    ids: dict[str, int] = {}
    for instrument in instruments:
        rules[instrument.symbol] = instrument_rules(instrument)
        ids[instrument.symbol] = instrument.pk
    schedule = FeeSchedule.objects.filter(tier_id=principal.tier.id).first()
    taker_bps = schedule.taker_fee_bps if schedule is not None else ZERO
    live = live_venues()
    wanted = {r.venue for r in requests} & live
    # One query, and only for a batch with live orders: such an order without credentials fails here, not
    # later at the venue step.
    stored = VenueCredential.objects.filter(customer_id=principal.customer_id, venue__in=wanted) if wanted else None
    credentials = frozenset(stored.values_list("venue", flat=True)) if stored is not None else frozenset()
    return _Market(rules, ids, taker_bps, frozenset({PAPER_VENUE}) | live, credentials)


def reference_mid(symbol: str, venue: str) -> Decimal | None:
    """Mid of the book an order is priced against, None without a trusted two-sided book."""
    hub = get_hub()
    paper_book = book_id(getattr(settings, "HFT_PAPER_BOOK_VENUE", "consolidated"), symbol)
    candidates = [paper_book] if venue == PAPER_VENUE else [book_id(venue, symbol), paper_book]
    for book in candidates:
        view = hub.view(book, 1)
        if view is None:
            continue
        if view.is_stale or not view.bids or not view.asks:
            return None
        bid = Decimal(view.bids[0][0]).scaleb(-view.price_exp)
        ask = Decimal(view.asks[0][0]).scaleb(-view.price_exp)
        return (bid + ask) / 2
    return None


def _check(request: OrderRequest, market: _Market, mids: dict[tuple[str, str], Decimal | None]) -> Reason | None:
    key = (request.symbol, request.venue)
    if key not in mids:
        mids[key] = reference_mid(*key)
    reason = check_order(request, market.rules.get(request.symbol), mid=mids[key], venues=market.venues)
    if reason is None and request.venue != PAPER_VENUE and request.venue not in market.credentials:
        return Reason.VENUE_CREDENTIALS_MISSING
    return reason


def _funds(request: OrderRequest, market: _Market, mid: Decimal | None) -> tuple[str, Decimal] | None:
    if request.venue != PAPER_VENUE or mid is None:
        return None
    rules = market.rules[request.symbol]
    return required_funds(request, rules, reference_price=mid, taker_fee_bps=market.taker_fee_bps)


# --- validate only --------------------------------------------------------------------------------------


def _validate_only(principal: Principal, requests: Sequence[OrderRequest], market: _Market) -> list[PlacementResult]:
    existing = _existing(principal.customer_id, requests)
    mids: dict[tuple[str, str], Decimal | None] = {}
    spent: dict[str, Decimal] = {}
    currencies = {cur for r in requests for cur in _currencies(r, market)}
    rows = Balance.objects.filter(customer_id=principal.customer_id, currency__in=currencies)
    available = {b.currency: b.available for b in rows}
    results = []
    for request in requests:
        if request.client_order_id in existing:
            results.append(_duplicate(existing[request.client_order_id]))
            continue
        reason = _check(request, market, mids)
        funds = None if reason else _funds(request, market, mids[(request.symbol, request.venue)])
        if funds is not None:
            currency, amount = funds
            left = available.get(currency, paper_grant(currency)) - spent.get(currency, ZERO)
            if amount > left:
                reason = Reason.INSUFFICIENT_BALANCE
            else:
                spent[currency] = spent.get(currency, ZERO) + amount
        results.append(PlacementResult(request.client_order_id, OrderStatus.REJECTED if reason else VALIDATED, reason))
    return results


def _currencies(request: OrderRequest, market: _Market) -> tuple[str, ...]:
    rules = market.rules.get(request.symbol)
    return () if rules is None or request.venue != PAPER_VENUE else (rules.base, rules.quote)


# --- recording ------------------------------------------------------------------------------------------


def _record(
    principal: Principal, requests: Sequence[OrderRequest], market: _Market, *, atomic: bool
) -> tuple[list[PlacementResult], list[Order]]:
    """Inside a transaction: results in request order, and the orders this call inserted."""
    customer_id = principal.customer_id
    ledger = Ledger.lock({(customer_id, cur) for r in requests for cur in _currencies(r, market)})
    # Read after the balance lock: a concurrent retry of this batch has committed by now, and is seen.
    existing = _existing(customer_id, requests)
    mids: dict[tuple[str, str], Decimal | None] = {}
    results: list[PlacementResult] = []
    new_orders: list[Order] = []
    for request in requests:
        if request.client_order_id in existing:
            results.append(_duplicate(existing[request.client_order_id]))
            continue
        reason = _check(request, market, mids)
        order = None if request.symbol not in market.instrument_ids else _new_order(principal, request, market)
        if order is not None and reason is None:
            reason = _hold(ledger, order, request, market, mids[(request.symbol, request.venue)])
        if order is not None:
            if reason is not None:
                order.status, order.reason = OrderStatus.REJECTED, reason
            new_orders.append(order)
        status = OrderStatus.REJECTED if reason or order is None else OrderStatus(order.status)
        results.append(PlacementResult(request.client_order_id, status, reason, order))
    if atomic and _any_rejected(results):
        transaction.set_rollback(True)
        return _atomic_failure(results), []
    created = _insert(customer_id, new_orders, ledger)
    ledger.save()
    inserted = {o.id for o in created}
    return [_lost_race(customer_id, r) if _is_lost(r, inserted) else r for r in results], created


def _is_lost(result: PlacementResult, inserted: set[UUID]) -> bool:
    return result.order is not None and not result.is_duplicate and result.order.id not in inserted


def _lost_race(customer_id: int, result: PlacementResult) -> PlacementResult:
    # A concurrent request with the same client_order_id committed first: answer with its order.
    return _duplicate(Order.objects.get(customer_id=customer_id, client_order_id=result.client_order_id))


def _new_order(principal: Principal, request: OrderRequest, market: _Market) -> Order:
    return Order(
        customer_id=principal.customer_id,
        api_key_id=principal.key_id,
        client_order_id=request.client_order_id,
        instrument_id=market.instrument_ids[request.symbol],
        venue=request.venue,
        side=request.side.value,
        type=request.type.value,
        time_in_force=request.time_in_force.value,
        price=request.price,
        quantity=request.quantity,
        fee_currency=market.rules[request.symbol].quote,
        status=OrderStatus.PENDING.value,
    )


def _hold(ledger: Ledger, order: Order, request: OrderRequest, market: _Market, mid: Decimal | None) -> Reason | None:
    funds = _funds(request, market, mid)
    if funds is None:
        return None
    try:
        ledger.hold(order, *funds)
    except InsufficientFunds:
        return Reason.INSUFFICIENT_BALANCE
    return None


def _insert(customer_id: int, orders: list[Order], ledger: Ledger) -> list[Order]:
    """Insert, skipping client ids a concurrent request inserted first; their holds are undone."""
    if not orders:
        return []
    if connection.vendor == "postgresql":
        stored = _insert_returning_ids(orders)
    else:
        Order.objects.bulk_create(orders, ignore_conflicts=True)
        ours = {o.id for o in orders}
        stored = set(
            Order.objects.filter(customer_id=customer_id, client_order_id__in=[o.client_order_id for o in orders])
            .filter(id__in=ours)
            .values_list("id", flat=True)
        )
    created = []
    for order in orders:
        if order.id in stored:
            created.append(order)
        else:
            ledger.release(order)
    return created


def _insert_returning_ids(orders: list[Order]) -> set[UUID]:
    """`INSERT ... SELECT FROM unnest(one array per column) ON CONFLICT DO NOTHING RETURNING id`: one statement
    with 26 parameters whatever the batch size, answering which rows went in (Django's bulk_create binds
    rows x columns values and cannot say which rows a conflict skipped)."""
    fields = list(Order._meta.concrete_fields)
    columns: list[list[object]] = [[] for _ in fields]
    for order in orders:
        # The attributes are already database-ready (Decimal, UUID, str, aware datetime): psycopg adapts them,
        # which is several times cheaper than Django's per-value preparation. pre_save stamps the auto_now fields.
        for column, field in zip(columns, fields, strict=True):
            column.append(field.pre_save(order, add=True))
    quote = connection.ops.quote_name
    names = ", ".join(quote(f.column) for f in fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    # Identifiers come from the model's meta; every value is a bound parameter.
    sql = (
        f"INSERT INTO {quote(Order._meta.db_table)} ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608
        f"ON CONFLICT DO NOTHING RETURNING {quote(Order._meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)
        return {row[0] for row in cursor.fetchall()}


def _existing(customer_id: int, requests: Sequence[OrderRequest]) -> dict[str, Order]:
    ids = [r.client_order_id for r in requests]
    return {o.client_order_id: o for o in Order.objects.filter(customer_id=customer_id, client_order_id__in=ids)}


def _duplicate(order: Order) -> PlacementResult:
    return PlacementResult(order.client_order_id, order.status, order.reason or None, order, is_duplicate=True)


def _atomic_failure(results: list[PlacementResult]) -> list[PlacementResult]:
    failed = []
    for result in results:
        if result.is_duplicate:
            failed.append(result)
        elif result.status == OrderStatus.REJECTED:
            failed.append(replace(result, order=None))
        else:
            failed.append(PlacementResult(result.client_order_id, OrderStatus.REJECTED, Reason.ATOMIC_BATCH_FAILED))
    return failed


def _any_rejected(results: list[PlacementResult]) -> bool:
    return any(r.status == OrderStatus.REJECTED and not r.is_duplicate for r in results)


# --- execution ------------------------------------------------------------------------------------------


def _engine_orders(principal: Principal, market: _Market, created: list[Order]) -> list[EngineOrder]:
    """The committed PENDING orders as the engine holds them."""
    symbols = {instrument_id: symbol for symbol, instrument_id in market.instrument_ids.items()}
    return [
        placed_order(order, tier_id=principal.tier.id, rules=market.rules[symbols[order.instrument_id]])
        for order in created
        if order.status == OrderStatus.PENDING
    ]


def _submit(results: list[PlacementResult], pending: list[EngineOrder]) -> list[PlacementResult]:
    """Hand committed PENDING orders to the engine; orders it reports in time carry their outcome."""
    if not pending:
        return results
    reports: dict[UUID, ExecutionReport] = {}
    try:
        reports = dict(engine_client().submit(pending, timeout_s=submit_timeout_s()))
    except EngineUnavailable:
        logger.warning("placement: no execution engine; %d orders stay PENDING until it starts", len(pending))
    return [_with_report(result, reports) for result in results]


def submit_timeout_s() -> float:
    return float(getattr(settings, "HFT_PAPER_REPLY_TIMEOUT_S", 2.0))


def _with_report(result: PlacementResult, reports: Mapping[UUID, ExecutionReport]) -> PlacementResult:
    order = result.order
    if order is None or result.is_duplicate or order.id not in reports:
        return result
    apply_report(order, reports[order.id])
    return replace(result, status=order.status, reason=order.reason or None, fills=reports[order.id].fills)


def apply_report(order: Order, report: ExecutionReport) -> None:
    """Mirror an engine report on the in-memory order (the engine has written the same to the database)."""
    if report.version < order.version:
        return
    order.status = report.status.value
    order.reason = report.reason
    order.filled_quantity = report.filled_quantity
    order.average_price = report.average_price
    order.fees = report.fees
    order.version = report.version
    order.updated_at = timezone.now()  # the engine's write time, to within its flush
