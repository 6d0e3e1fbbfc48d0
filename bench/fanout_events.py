"""The fan-out benchmark's market: one seeded BTC-USDT book and its 10-level deltas, as levels and as stream JSON.

Every server in `bench/fanout.py` carries the same events. The platform gets them as levels (fixed-point
integers at the instrument's exponents) through its bus and encodes them itself; the bare and Channels
servers get the JSON this module writes, in the shape of the platform's `delta` message (docs/streaming.md),
with the publish time stamped in just before sending.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

Level = tuple[int, int]  # (price units, size units) at PRICE_EXP / SIZE_EXP

PAIR = "BTC-USDT"
VENUE = "consolidated"
BOOK = f"{VENUE}:{PAIR}"
# The seeded BTC-USDT instrument's precision (apps/orderbook migration 0002).
PRICE_EXP = SIZE_EXP = 8
TICK_UNITS = 10**6  # 0.01 USDT
MID_UNITS = 65_000 * 10**PRICE_EXP
BOOK_LEVELS = 100  # per side
CHANGES_PER_DELTA = 10
REMOVE_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Delta:
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class BenchMarket:
    """A book around a fixed mid: bids below, asks above, so no delta can cross it; most changes near the top."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        for i in range(BOOK_LEVELS):
            self._bids[self._price("bid", i)] = self._size()
            self._asks[self._price("ask", i)] = self._size()

    def snapshot(self) -> Delta:
        return Delta(
            tuple(sorted(self._bids.items(), reverse=True)),
            tuple(sorted(self._asks.items())),
        )

    def step(self) -> Delta:
        """One delta of CHANGES_PER_DELTA distinct levels (absolute sizes, 0 removes)."""
        changes: dict[tuple[str, int], int] = {}
        while len(changes) < CHANGES_PER_DELTA:
            side = self._rng.choice(("bid", "ask"))
            # Two thirds of the changes within the top 5 levels, the rest spread deeper.
            index = min(int(self._rng.expovariate(1 / 4)), BOOK_LEVELS - 1)
            price = self._price(side, index)
            levels = self._bids if side == "bid" else self._asks
            if price in levels and self._rng.random() < REMOVE_SHARE:
                size = 0
                del levels[price]
            else:
                size = levels[price] = self._size()
            changes[(side, price)] = size
        bids = tuple(sorted(((p, q) for (s, p), q in changes.items() if s == "bid"), reverse=True))
        asks = tuple(sorted((p, q) for (s, p), q in changes.items() if s == "ask"))
        return Delta(bids, asks)

    def deltas(self) -> Iterator[Delta]:
        while True:
            yield self.step()

    def _price(self, side: str, index: int) -> int:
        offset = (index + 1) * TICK_UNITS
        return MID_UNITS - offset if side == "bid" else MID_UNITS + offset

    def _size(self) -> int:
        return self._rng.randint(1, 500) * 10**SIZE_EXP // 100  # 0.01 ... 5 BTC


def decimal_text(units: int, exp: int) -> str:
    whole, frac = divmod(units, 10**exp)
    return f"{whole}.{frac:0{exp}d}"


def text_levels(levels: tuple[Level, ...]) -> list[tuple[str, str]]:
    return [(decimal_text(p, PRICE_EXP), decimal_text(q, SIZE_EXP)) for p, q in levels]


def delta_json(delta: Delta, sequence: int, publish_ts_ns: int) -> bytes:
    """The platform's JSON delta for a full-depth stream, stamped at `publish_ts_ns` (exchange/receive just before)."""
    return orjson.dumps(
        {
            "type": "delta",
            "pair": PAIR,
            "venue": VENUE,
            "sequence": sequence,
            "bids": text_levels(delta.bids),
            "asks": text_levels(delta.asks),
            "exchange_timestamp": publish_ts_ns - 1_000_000,
            "receive_timestamp": publish_ts_ns - 100_000,
            "timestamp": publish_ts_ns,
        }
    )
