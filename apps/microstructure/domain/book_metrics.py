"""Book-state metrics of one book now: touch, spread, mids, depth, imbalance, and impact by walking the book.

Prices and sizes stay integers (units at the `Scale`) until each formula's single division; with M2 =
bid + ask (twice the mid) every mid-relative ratio is a ratio of integers, e.g. spread / mid = 2(a - b) / M2.
"""

from __future__ import annotations

from bisect import bisect_right
from decimal import Decimal

from apps.orderbook.domain.book import Level

from .numbers import BPS, CTX, EXTRA_PRICE_PLACES, PLACES_BPS, PLACES_RATIO, ratio, to_units_floor, units
from .types import BookLevels, Metric, MetricValue, Scale

BOOK_METRIC_NAMES = (
    "best_bid_price",
    "best_ask_price",
    "spread_price",
    "spread_bps",
    "mid_price",
    "microprice",
    "depth_weighted_mid_price",
    "depth_bid_top_n_base",
    "depth_ask_top_n_base",
    "depth_bid_within_bps",
    "depth_ask_within_bps",
    "book_imbalance",
    "price_impact_bps",
    "slippage_bps",
    "impact_unfilled_base",
)
UNITS = {
    "best_bid_price": "price",
    "best_ask_price": "price",
    "spread_price": "price",
    "spread_bps": "bps",
    "mid_price": "price",
    "microprice": "price",
    "depth_weighted_mid_price": "price",
    "depth_bid_top_n_base": "base",
    "depth_ask_top_n_base": "base",
    "depth_bid_within_bps": "base",
    "depth_ask_within_bps": "base",
    "book_imbalance": "ratio",
    "price_impact_bps": "bps",
    "slippage_bps": "bps",
    "impact_unfilled_base": "base",
}
SIDES = ("buy", "sell")


def size_key(size: Decimal) -> str:
    """The stable text of an impact size: Decimal("1.50") → "1.5"."""
    return format(size.normalize(), "f")


def null(name: str, reason: str, keys: tuple[str, ...] = ()) -> Metric:
    return Metric(None, UNITS[name], 0, reason, keys)


def book_metrics(
    book: BookLevels | None,
    scale: Scale,
    *,
    depth_levels: int,
    bands_bps: tuple[int, ...],
    impact_sizes: tuple[Decimal, ...],
) -> dict[str, Metric]:
    """Every book-state metric of `book` (None: no book yet), keyed by name in BOOK_METRIC_NAMES order."""
    band_keys = tuple(str(band) for band in bands_bps)
    impact_keys = tuple(f"{side}.{size_key(size)}" for side in SIDES for size in impact_sizes)
    keys = {
        "depth_bid_within_bps": band_keys,
        "depth_ask_within_bps": band_keys,
        "price_impact_bps": impact_keys,
        "slippage_bps": impact_keys,
        "impact_unfilled_base": impact_keys,
    }
    if book is None:
        return {name: null(name, "no_book", keys.get(name, ())) for name in BOOK_METRIC_NAMES}
    bids, asks = book.bids, book.asks
    pe, se = scale.price_exp, scale.size_exp
    out: dict[str, Metric] = {}
    out["best_bid_price"] = Metric(units(bids[0][0], pe), "price", 1) if bids else null("best_bid_price", "no_bids")
    out["best_ask_price"] = Metric(units(asks[0][0], pe), "price", 1) if asks else null("best_ask_price", "no_asks")
    top_bids, top_asks = bids[:depth_levels], asks[:depth_levels]
    bid_qty, ask_qty = sum(q for _, q in top_bids), sum(q for _, q in top_asks)
    out["depth_bid_top_n_base"] = Metric(units(bid_qty, se), "base", len(top_bids))
    out["depth_ask_top_n_base"] = Metric(units(ask_qty, se), "base", len(top_asks))
    levels = len(top_bids) + len(top_asks)
    if bid_qty + ask_qty:
        imbalance = ratio(bid_qty - ask_qty, bid_qty + ask_qty, PLACES_RATIO)
        out["book_imbalance"] = Metric(imbalance, "ratio", levels)
    else:
        out["book_imbalance"] = null("book_imbalance", "empty_book")
    if not bids or not asks:
        for name in BOOK_METRIC_NAMES:
            if name not in out:
                out[name] = null(name, "one_sided_book", keys.get(name, ()))
        return {name: out[name] for name in BOOK_METRIC_NAMES}
    (bid, bid1_qty), (ask, ask1_qty) = bids[0], asks[0]
    m2 = bid + ask
    out["spread_price"] = Metric(units(ask - bid, pe), "price", 2)
    out["spread_bps"] = Metric(ratio(2 * (ask - bid) * BPS, m2, PLACES_BPS), "bps", 2)
    out["mid_price"] = Metric(CTX.divide(units(m2, pe), 2), "price", 2)  # exact: one more digit at most
    # Weighted mid (Stoikov's micro-price to zeroth order): the touch weighted by the opposite queue.
    micro = ratio(bid * ask1_qty + ask * bid1_qty, bid1_qty + ask1_qty, EXTRA_PRICE_PLACES)
    out["microprice"] = Metric(micro.scaleb(-pe, CTX), "price", 2)
    out["depth_weighted_mid_price"] = depth_weighted_mid(top_bids, top_asks, pe)
    for name, side, sign in (("depth_bid_within_bps", bids, -1), ("depth_ask_within_bps", asks, 1)):
        out[name] = depth_within(side, m2, sign, bands_bps, se)
    out.update(walk_metrics(bids, asks, impact_sizes, scale))
    return {name: out[name] for name in BOOK_METRIC_NAMES}


def depth_weighted_mid(top_bids: tuple[Level, ...], top_asks: tuple[Level, ...], price_exp: int) -> Metric:
    """(VWAP_bid * Q_ask + VWAP_ask * Q_bid) / (Q_bid + Q_ask) over the top N levels of each side.

    With VWAP_side = S_side / Q_side (S = sum of price * qty) this is
    (S_bid * Q_ask^2 + S_ask * Q_bid^2) / (Q_bid * Q_ask * (Q_bid + Q_ask)): one division.
    """
    q_bid, q_ask = sum(q for _, q in top_bids), sum(q for _, q in top_asks)
    s_bid, s_ask = sum(p * q for p, q in top_bids), sum(p * q for p, q in top_asks)
    value = ratio(s_bid * q_ask * q_ask + s_ask * q_bid * q_bid, q_bid * q_ask * (q_bid + q_ask), EXTRA_PRICE_PLACES)
    return Metric(value.scaleb(-price_exp, CTX), "price", len(top_bids) + len(top_asks))


def depth_within(levels: tuple[Level, ...], m2: int, sign: int, bands_bps: tuple[int, ...], size_exp: int) -> Metric:
    """Base quantity of one side within each band of the mid: ask p <= m(1 + b/1e4), bid p >= m(1 - b/1e4).

    In integers, with m = M2 / 2: ask p <= M2 (1e4 + b) / 2e4, bid p >= M2 (1e4 - b) / 2e4; the levels
    inside are a prefix of the side, found by bisection.
    """
    result: dict[str, MetricValue] = {}
    counted = total = 0
    for band in sorted(bands_bps):
        if sign > 0:  # asks ascending: the first level above floor(M2 (1e4 + b) / 2e4) is outside
            end = bisect_right(levels, m2 * (BPS + band) // (2 * BPS), key=_price)
        else:  # bids descending: the first level below ceil(M2 (1e4 - b) / 2e4) is outside
            end = bisect_right(levels, -_ceil_div(m2 * (BPS - band), 2 * BPS), key=_neg_price)
        total += sum(q for _, q in levels[counted:end])
        counted = max(counted, end)
        result[str(band)] = units(total, size_exp)
    return Metric({str(band): result[str(band)] for band in bands_bps}, "base", counted)


def _price(level: Level) -> int:
    return level[0]


def _neg_price(level: Level) -> int:
    return -level[0]


def _ceil_div(num: int, den: int) -> int:
    return -(-num // den)


def walk_metrics(
    bids: tuple[Level, ...], asks: tuple[Level, ...], impact_sizes: tuple[Decimal, ...], scale: Scale
) -> dict[str, Metric]:
    """Market orders of each size walked through the book; impact and slippage of the filled part only.

    price_impact_bps: how far the worst level touched is from the mid, (p_worst - m) / m, sells mirrored.
    slippage_bps: the average fill price against the mid, (VWAP_fill - m) / m, sells mirrored.
    impact_unfilled_base: the part of the size the whole visible side could not fill (never extrapolated).
    """
    m2 = bids[0][0] + asks[0][0]
    sized = sorted((to_units_floor(size, scale.size_exp), size_key(size)) for size in impact_sizes)
    impact: dict[str, MetricValue] = {}
    slippage: dict[str, MetricValue] = {}
    unfilled: dict[str, MetricValue] = {}
    deepest = 0
    for side, levels, sign in (("buy", asks, 1), ("sell", bids, -1)):
        side_impact: dict[str, MetricValue] = {}
        side_slip: dict[str, MetricValue] = {}
        side_unfilled: dict[str, MetricValue] = {}
        index = used = filled = cost = 0
        worst = levels[0][0]
        for size, key in sized:
            while filled < size and index < len(levels):
                price, qty = levels[index]
                take = min(qty - used, size - filled)
                filled, cost, used, worst = filled + take, cost + take * price, used + take, price
                if used == qty:
                    index, used = index + 1, 0
            deepest = max(deepest, index + (used > 0))
            if filled:
                # (p - m) / m = (2p - M2) / M2; for the average, p = cost / filled.
                side_impact[key] = ratio(sign * (2 * worst - m2) * BPS, m2, PLACES_BPS)
                side_slip[key] = ratio(sign * (2 * cost - m2 * filled) * BPS, m2 * filled, PLACES_BPS)
            else:  # a size below one size unit: nothing to walk
                side_impact[key] = side_slip[key] = None
            side_unfilled[key] = units(size - filled, scale.size_exp)
        impact[side], slippage[side], unfilled[side] = side_impact, side_slip, side_unfilled
    return {
        "price_impact_bps": Metric(impact, "bps", deepest),
        "slippage_bps": Metric(slippage, "bps", deepest),
        "impact_unfilled_base": Metric(unfilled, "base", deepest),
    }
