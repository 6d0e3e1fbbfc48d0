"""Errors of the microstructure app, each with a stable machine `code` and a `kind` the edge maps to a status."""

from __future__ import annotations

from typing import Any


class MicrostructureError(Exception):
    kind = "invalid"
    code = "invalid_request"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


class UnknownWindow(MicrostructureError):
    kind, code = "invalid", "unknown_window"


class UnknownMetric(MicrostructureError):
    kind, code = "invalid", "unknown_metric"


class UnknownInterval(MicrostructureError):
    kind, code = "invalid", "unknown_interval"


class InvalidTimeRange(MicrostructureError):
    kind, code = "invalid", "invalid_time_range"


class MetricsNotAvailable(MicrostructureError):
    """The book has never been seen by this process (its feed is not running)."""

    kind, code = "unavailable", "metrics_not_available"
