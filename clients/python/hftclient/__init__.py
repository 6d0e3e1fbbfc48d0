"""Client of the hftplatform order-book stream: decoders, a local book with gap detection, an asyncio client."""

from .binary import decode_binary
from .book import Gap, LocalBook
from .messages import (
    BookMessage,
    DecodeError,
    ErrorMessage,
    Heartbeat,
    Level,
    Message,
    Pong,
    Source,
    Stale,
    Subscribed,
    Trade,
    Unknown,
    Unsubscribed,
    parse_json,
    units_to_decimal,
)
from .stream import BookStream, StreamClosed, Subscription, Update

__all__ = [
    "BookMessage",
    "BookStream",
    "DecodeError",
    "ErrorMessage",
    "Gap",
    "Heartbeat",
    "Level",
    "LocalBook",
    "Message",
    "Pong",
    "Source",
    "Stale",
    "StreamClosed",
    "Subscribed",
    "Subscription",
    "Trade",
    "Unknown",
    "Unsubscribed",
    "Update",
    "decode_binary",
    "parse_json",
    "units_to_decimal",
]
