"""Errors of the orderbook app, each with a stable machine `code` and a `kind` the edge maps to a status."""

from __future__ import annotations

from typing import Any


class OrderbookError(Exception):
    kind = "invalid"
    code = "invalid_request"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


class FeedConfigError(OrderbookError):
    code = "invalid_feed_config"


class UnknownPair(OrderbookError):
    kind, code = "not_found", "unknown_pair"


class UnknownVenue(OrderbookError):
    kind, code = "not_found", "unknown_venue"


class InvalidParameter(OrderbookError):
    kind, code = "invalid", "invalid_parameter"


class HistoryTooOld(OrderbookError):
    kind, code = "gone", "history_too_old"


class SequenceAhead(OrderbookError):
    kind, code = "invalid", "since_sequence_ahead"


class BookNotAvailable(OrderbookError):
    kind, code = "unavailable", "book_not_available"


class StreamRequestError(OrderbookError):
    """A bad request on the book WebSocket; the code varies (docs/streaming.md lists them)."""

    def __init__(self, code: str, message: str, *, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.code = code
