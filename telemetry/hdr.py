"""HDR histograms in the one configuration every process uses (see `layout`), and their summaries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from telemetry.layout import HIGHEST_NS, LOWEST_NS, PERCENTILES, SIGNIFICANT_DIGITS


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS, b64_wrap=False)


def encode(histogram: HdrHistogram) -> bytes:
    """The compressed HDR V2 encoding (raw bytes, no base64), the form kept in Redis."""
    return bytes(histogram.encode())


def merge(blobs: Iterable[bytes], into: HdrHistogram | None = None) -> HdrHistogram:
    """One histogram of every encoded histogram given (the sum of their counts)."""
    merged = into if into is not None else new_histogram()
    for blob in blobs:
        merged.add(HdrHistogram.decode(blob, b64_wrap=False))
    return merged


@dataclass(frozen=True, slots=True)
class Stats:
    """Count and percentiles of a histogram in ns; the percentiles are None when nothing was recorded."""

    count: int
    p50_ns: int | None
    p95_ns: int | None
    p99_ns: int | None
    p999_ns: int | None
    max_ns: int | None


def stats(histogram: HdrHistogram) -> Stats:
    count = int(histogram.get_total_count())
    if count == 0:
        return Stats(0, None, None, None, None, None)
    at = histogram.get_percentile_to_value_dict(list(PERCENTILES))
    p50, p95, p99, p999 = (int(at[p]) for p in PERCENTILES)
    return Stats(count, p50, p95, p99, p999, int(histogram.get_max_value()))
