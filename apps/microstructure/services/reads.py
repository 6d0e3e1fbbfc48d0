"""Metric reads for REST and WebSocket: live results from this process's windows, bars from the database."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.microstructure.domain.metrics import WINDOWS_S, MetricsParams, compute_metrics
from apps.microstructure.domain.types import Scale
from apps.microstructure.domain.window import MarketWindow
from apps.microstructure.exceptions import InvalidTimeRange, UnknownInterval, UnknownMetric, UnknownWindow
from apps.microstructure.models import MetricBar
from apps.microstructure.services.live import get_microstructure
from apps.orderbook.exceptions import BookNotAvailable
from apps.orderbook.services.reads import catalogue, resolve_book

NS = 1_000_000_000
MAX_INSTANT_NS = 253_402_300_799 * NS  # 9999-12-31T23:59:59Z, the last second a datetime can hold
INTERVAL_NS: dict[str, int] = {MetricBar.Interval.SECOND: NS, MetricBar.Interval.MINUTE: 60 * NS}


def window_name(window_s: int) -> str:
    return f"{window_s // 60}m" if window_s % 60 == 0 else f"{window_s}s"


WINDOWS_BY_NAME = {window_name(s): s for s in WINDOWS_S}


@dataclass(frozen=True, slots=True)
class MetricsTarget:
    symbol: str
    venue: str
    book: str
    windows_s: tuple[int, ...]


def resolve_target(pair: str, venue: str | None, window: str | None) -> MetricsTarget:
    """The book and windows asked for; UnknownPair / UnknownVenue / UnknownWindow otherwise."""
    if window and window not in WINDOWS_BY_NAME:
        raise UnknownWindow(
            f"Unknown window {window!r}; one of {', '.join(WINDOWS_BY_NAME)}.",
            detail={"windows": list(WINDOWS_BY_NAME)},
        )
    symbol, label, book = resolve_book(pair, venue)
    return MetricsTarget(symbol, label, book, (WINDOWS_BY_NAME[window],) if window else tuple(WINDOWS_S))


def live_metrics(target: MetricsTarget) -> dict[str, Any]:
    """Every metric of the target's book over each window asked for, now."""
    service = get_microstructure()
    if not service.has_book(target.book):
        raise BookNotAvailable(f"No data for {target.symbol} on {target.venue} yet; is its feed running?")
    now = time.time_ns()
    results = {window_name(w): r.as_json() for w, r in service.metrics(target.book, target.windows_s, now).items()}
    view = service.hub.view(target.book, 0)
    return {
        "pair": target.symbol,
        "venue": target.venue,
        "book": target.book,
        "ts_ns": now,
        "stale": view is None or view.is_stale,
        "windows": results,
    }


@functools.cache
def known_bar_metrics() -> tuple[str, ...]:
    """The names bars are stored under: the formulas' flattened scalars, which do not depend on the input."""
    empty = MarketWindow(Scale(0, 0), max(WINDOWS_S) * NS)
    result = compute_metrics(empty, None, window_s=WINDOWS_S[0], now_ns=0, params=MetricsParams())
    return tuple(result.scalars())


def parse_instant(raw: str | None, name: str) -> int | None:
    """A bound of the history range: integer ns since the epoch, or ISO 8601 (UTC unless it says), between
    the epoch and the end of year 9999 (what a database timestamp can hold)."""
    if raw is None or raw == "":
        return None
    invalid = InvalidTimeRange(
        f"{name!r} must be nanoseconds since the epoch or an ISO 8601 time, from 1970 to 9999.", detail={name: raw}
    )
    if raw.lstrip("-").isdigit():
        if len(raw) > 22:  # far beyond MAX_INSTANT_NS (21 digits); int() of a huge text is slow or refused
            raise invalid
        value = int(raw)
    else:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise invalid from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = int(moment.timestamp()) * NS + moment.microsecond * 1000
    if not 0 <= value <= MAX_INSTANT_NS:
        raise invalid
    return value


def metric_history(
    pair: str, venue: str | None, metric: str, interval: str, from_raw: str | None, to_raw: str | None, limit: int
) -> dict[str, Any]:
    """Bars of one metric in [from, to], oldest first, at most `limit` (and HFT_MICRO_HISTORY_MAX_ROWS)."""
    if interval not in INTERVAL_NS:
        raise UnknownInterval(
            f"interval must be one of {', '.join(INTERVAL_NS)}.", detail={"intervals": [*INTERVAL_NS]}
        )
    known = known_bar_metrics()
    if metric not in known:
        raise UnknownMetric(f"Unknown metric {metric!r}.", detail={"metrics": list(known)})
    symbol, label, _ = resolve_book(pair, venue)
    limit = min(limit, settings.HFT_MICRO_HISTORY_MAX_ROWS)
    to_ns = parse_instant(to_raw, "to")
    to_ns = time.time_ns() if to_ns is None else to_ns
    from_ns = parse_instant(from_raw, "from")
    from_ns = max(0, to_ns - limit * INTERVAL_NS[interval]) if from_ns is None else from_ns
    if from_ns > to_ns:
        raise InvalidTimeRange("'from' is after 'to'.", detail={"from_ns": from_ns, "to_ns": to_ns})
    rows = list(
        MetricBar.objects.filter(
            instrument_id=catalogue().instruments[symbol]["id"],
            venue=label,
            interval=interval,
            metric=metric,
            ts__gte=to_datetime(from_ns, ceil=True),
            ts__lte=to_datetime(to_ns),
        )
        .order_by("ts")
        .values_list("ts", "value")[: limit + 1]
    )
    has_more = len(rows) > limit
    bars: list[dict[str, Any]] = [
        {"ts_ns": int(ts.timestamp()) * NS, "value": decimal_text(value)} for ts, value in rows[:limit]
    ]
    return {
        "pair": symbol,
        "venue": label,
        "metric": metric,
        "interval": interval,
        "from_ns": from_ns,
        "to_ns": to_ns,
        "limit": limit,
        "bars": bars,
        "has_more": has_more,
        # Pass as `from` to continue: bars sit on whole seconds, so the next one is at least 1 s later.
        "next_from_ns": bars[-1]["ts_ns"] + NS if has_more else None,
    }


def to_datetime(ts_ns: int, *, ceil: bool = False) -> datetime:
    seconds, rest = divmod(ts_ns, NS)
    return datetime.fromtimestamp(seconds + (1 if ceil and rest else 0), tz=UTC)


def decimal_text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
