"""The order state machine as a table: (status, event) -> next status; anything not in it is refused.

`docs/paper-engine.md` embeds `render_transition_table()`; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from .types import OrderStatus


class Event(StrEnum):
    ACCEPT = "accept"  # the execution venue acknowledged the order; it rests unfilled
    PARTIAL_FILL = "partial_fill"  # a fill that leaves some quantity open
    FILL = "fill"  # the fill that completes the quantity
    CANCEL = "cancel"  # by the customer, cancel-all or the dead man's switch
    REJECT = "reject"  # refused before it ever worked (risk, post-only would take, venue reject)
    EXPIRE = "expire"  # its time in force ended it (IOC/market remainder, FOK not fillable)
    TIMEOUT = "timeout"  # a live venue did not answer: outcome unknown until reconciled
    RECONCILE_OPEN = "reconcile_open"  # the venue reports it open, unfilled
    RECONCILE_PARTIAL = "reconcile_partial"  # open, partly filled
    RECONCILE_FILLED = "reconcile_filled"
    RECONCILE_CANCELED = "reconcile_canceled"
    RECONCILE_EXPIRED = "reconcile_expired"
    RECONCILE_REJECTED = "reconcile_rejected"
    RECONCILE_NOT_FOUND = "reconcile_not_found"  # the venue never received it: nothing happened


class IllegalTransition(Exception):
    """An event that the table does not allow in the order's current status (a bug or a stale update)."""

    code = "illegal_transition"

    def __init__(self, status: OrderStatus, event: Event) -> None:
        super().__init__(f"{event.value} is not allowed in status {status.value}")
        self.status = status
        self.event = event


S = OrderStatus
_WORKING = (S.PENDING, S.NEW, S.PARTIALLY_FILLED)  # may still trade

_TABLE: dict[tuple[OrderStatus, Event], OrderStatus] = {
    (S.PENDING, Event.ACCEPT): S.NEW,
    (S.PENDING, Event.REJECT): S.REJECTED,
    **{(status, Event.PARTIAL_FILL): S.PARTIALLY_FILLED for status in _WORKING},
    **{(status, Event.FILL): S.FILLED for status in _WORKING},
    **{(status, Event.CANCEL): S.CANCELED for status in _WORKING},
    **{(status, Event.EXPIRE): S.EXPIRED for status in _WORKING},
    # A placement or a cancel that timed out; a reconciliation that times out again stays UNKNOWN.
    **{(status, Event.TIMEOUT): S.UNKNOWN for status in (*_WORKING, S.UNKNOWN)},
    (S.UNKNOWN, Event.RECONCILE_OPEN): S.NEW,
    (S.UNKNOWN, Event.RECONCILE_PARTIAL): S.PARTIALLY_FILLED,
    (S.UNKNOWN, Event.RECONCILE_FILLED): S.FILLED,
    (S.UNKNOWN, Event.RECONCILE_CANCELED): S.CANCELED,
    (S.UNKNOWN, Event.RECONCILE_EXPIRED): S.EXPIRED,
    (S.UNKNOWN, Event.RECONCILE_REJECTED): S.REJECTED,
    # Never received, so never worked: REJECTED (reason venue_timeout), and its funds are released.
    (S.UNKNOWN, Event.RECONCILE_NOT_FOUND): S.REJECTED,
}

TRANSITIONS: Mapping[tuple[OrderStatus, Event], OrderStatus] = MappingProxyType(_TABLE)

_RECONCILE_EVENTS: Mapping[OrderStatus, Event] = MappingProxyType(
    {
        S.NEW: Event.RECONCILE_OPEN,
        S.PARTIALLY_FILLED: Event.RECONCILE_PARTIAL,
        S.FILLED: Event.RECONCILE_FILLED,
        S.CANCELED: Event.RECONCILE_CANCELED,
        S.EXPIRED: Event.RECONCILE_EXPIRED,
        S.REJECTED: Event.RECONCILE_REJECTED,
        S.UNKNOWN: Event.TIMEOUT,
    }
)


def next_status(status: OrderStatus, event: Event) -> OrderStatus:
    """The status after `event`, or IllegalTransition if the table does not allow it."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(status, event) from None


def can_transition(status: OrderStatus, event: Event) -> bool:
    return (status, event) in TRANSITIONS


def fill_event(quantity: Decimal, filled_after: Decimal) -> Event:
    """FILL when the fill completes the order, else PARTIAL_FILL."""
    if filled_after > quantity:
        raise ValueError(f"filled {filled_after} exceeds quantity {quantity}")
    return Event.FILL if filled_after == quantity else Event.PARTIAL_FILL


def reconcile_event(venue_status: OrderStatus | None) -> Event:
    """The event for a venue's answer to a reconciliation by client_order_id (None: not found)."""
    if venue_status is None:
        return Event.RECONCILE_NOT_FOUND
    try:
        return _RECONCILE_EVENTS[venue_status]
    except KeyError:
        raise ValueError(f"a venue cannot report {venue_status.value}") from None


def render_transition_table() -> str:
    """The table as Markdown, one row per allowed transition, in a stable order (status, then event)."""
    statuses = list(OrderStatus)
    events = list(Event)
    rows = sorted(TRANSITIONS.items(), key=lambda item: (statuses.index(item[0][0]), events.index(item[0][1])))
    lines = ["| from | event | to |", "|---|---|---|"]
    lines += [f"| {src.value} | {event.value} | {dst.value} |" for (src, event), dst in rows]
    return "\n".join(lines) + "\n"
