"""Venue book checksums over the levels' original text: OKX (top 25, signed CRC32) and Kraken (top 10)."""

from __future__ import annotations

import zlib

from .book import ASK, BID, OrderBook, TextLevel


def okx_check_string(bids: list[TextLevel], asks: list[TextLevel]) -> str:
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    return ":".join(parts)


def okx_checksum(bids: list[TextLevel], asks: list[TextLevel]) -> int:
    value = zlib.crc32(okx_check_string(bids[:25], asks[:25]).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def okx_book_checksum(book: OrderBook) -> int:
    return okx_checksum(book.top_text(BID, 25), book.top_text(ASK, 25))


def _kraken_part(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_check_string(bids: list[TextLevel], asks: list[TextLevel]) -> str:
    return "".join(_kraken_part(p) + _kraken_part(q) for p, q in [*asks[:10], *bids[:10]])


def kraken_checksum(bids: list[TextLevel], asks: list[TextLevel]) -> int:
    return zlib.crc32(kraken_check_string(bids, asks).encode())


def kraken_book_checksum(book: OrderBook) -> int:
    return kraken_checksum(book.top_text(BID, 10), book.top_text(ASK, 10))
