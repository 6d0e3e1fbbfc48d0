"""The order state machine: every allowed and every refused transition, and the doc's copy of the table."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from pathlib import Path

import pytest

from apps.orders.domain.states import (
    TRANSITIONS,
    Event,
    IllegalTransition,
    can_transition,
    fill_event,
    next_status,
    reconcile_event,
    render_transition_table,
)
from apps.orders.domain.types import TERMINAL, OrderStatus

S = OrderStatus
E = Event

# Written out by hand (not derived from the code) so that a change to the table has to change this too.
EXPECTED: dict[tuple[OrderStatus, Event], OrderStatus] = {
    (S.PENDING, E.ACCEPT): S.NEW,
    (S.PENDING, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PENDING, E.FILL): S.FILLED,
    (S.PENDING, E.CANCEL): S.CANCELED,
    (S.PENDING, E.REJECT): S.REJECTED,
    (S.PENDING, E.EXPIRE): S.EXPIRED,
    (S.PENDING, E.TIMEOUT): S.UNKNOWN,
    (S.NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.NEW, E.FILL): S.FILLED,
    (S.NEW, E.CANCEL): S.CANCELED,
    (S.NEW, E.EXPIRE): S.EXPIRED,
    (S.NEW, E.TIMEOUT): S.UNKNOWN,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.TIMEOUT): S.UNKNOWN,
    (S.UNKNOWN, E.TIMEOUT): S.UNKNOWN,
    (S.UNKNOWN, E.RECONCILE_OPEN): S.NEW,
    (S.UNKNOWN, E.RECONCILE_PARTIAL): S.PARTIALLY_FILLED,
    (S.UNKNOWN, E.RECONCILE_FILLED): S.FILLED,
    (S.UNKNOWN, E.RECONCILE_CANCELED): S.CANCELED,
    (S.UNKNOWN, E.RECONCILE_EXPIRED): S.EXPIRED,
    (S.UNKNOWN, E.RECONCILE_REJECTED): S.REJECTED,
    (S.UNKNOWN, E.RECONCILE_NOT_FOUND): S.REJECTED,
}
ALLOWED = sorted(EXPECTED.items())
REFUSED = sorted(pair for pair in itertools.product(OrderStatus, Event) if pair not in EXPECTED)
DOC = Path(__file__).resolve().parents[4] / "docs" / "paper-engine.md"


def test_table_is_exactly_the_expected_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("pair", "target"), ALLOWED, ids=[f"{s}-{e}" for (s, e), _ in ALLOWED])
def test_allowed_transition_moves_to_its_target(pair: tuple[OrderStatus, Event], target: OrderStatus) -> None:
    status, event = pair
    assert can_transition(status, event)
    assert next_status(status, event) is target


@pytest.mark.parametrize("pair", REFUSED, ids=[f"{s}-{e}" for s, e in REFUSED])
def test_refused_transition_raises_illegal_transition(pair: tuple[OrderStatus, Event]) -> None:
    status, event = pair
    assert not can_transition(status, event)
    with pytest.raises(IllegalTransition) as info:
        next_status(status, event)
    assert (info.value.status, info.value.event) == (status, event)
    assert info.value.code == "illegal_transition"


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_status_has_no_way_out(status: OrderStatus) -> None:
    assert not any(can_transition(status, event) for event in Event)


def test_table_does_not_touch_the_map_in_place() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[(S.FILLED, E.CANCEL)] = S.CANCELED


def test_every_status_but_pending_is_reachable() -> None:
    reached = set(TRANSITIONS.values())
    assert reached == set(OrderStatus) - {S.PENDING}


def test_fill_that_completes_the_quantity_is_fill_otherwise_partial() -> None:
    assert fill_event(Decimal("2"), Decimal("2.0")) is E.FILL
    assert fill_event(Decimal("2"), Decimal("1.5")) is E.PARTIAL_FILL
    with pytest.raises(ValueError, match="exceeds"):
        fill_event(Decimal("2"), Decimal("2.1"))


@pytest.mark.parametrize(
    ("venue_status", "event"),
    [
        (None, E.RECONCILE_NOT_FOUND),
        (S.NEW, E.RECONCILE_OPEN),
        (S.PARTIALLY_FILLED, E.RECONCILE_PARTIAL),
        (S.FILLED, E.RECONCILE_FILLED),
        (S.CANCELED, E.RECONCILE_CANCELED),
        (S.EXPIRED, E.RECONCILE_EXPIRED),
        (S.REJECTED, E.RECONCILE_REJECTED),
        (S.UNKNOWN, E.TIMEOUT),
    ],
)
def test_reconciliation_answer_maps_to_its_event(venue_status: OrderStatus | None, event: Event) -> None:
    assert reconcile_event(venue_status) is event
    assert can_transition(S.UNKNOWN, event)


def test_venue_cannot_report_pending() -> None:
    with pytest.raises(ValueError, match="PENDING"):
        reconcile_event(S.PENDING)


def test_doc_table_is_the_code_table() -> None:
    text = DOC.read_text()
    found = re.search(r"<!-- transitions:start -->\n(.*?)<!-- transitions:end -->", text, re.DOTALL)
    assert found, "docs/paper-engine.md lost its transitions markers"
    assert found.group(1) == render_transition_table(), (
        "docs/paper-engine.md's transition table is stale; paste render_transition_table() between the markers"
    )


def test_rendered_table_has_one_row_per_transition() -> None:
    rows = render_transition_table().splitlines()[2:]
    assert len(rows) == len(EXPECTED)
    assert "| PENDING | accept | NEW |" in rows
