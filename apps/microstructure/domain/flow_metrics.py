"""Window metrics of one book over [now - window_s, now]: trade flow, sampled-mid statistics, liquidity.

Every figure comes from the window's integer prefix sums (O(log n) per query), plus a fixed number of
regression buckets for Kyle's lambda and Amihud's illiquidity.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from .numbers import (
    BPS,
    CTX,
    EXTRA_PRICE_PLACES,
    PLACES_BPS,
    PLACES_PER_S,
    PLACES_RATIO,
    quantize,
    ratio,
    significant,
    sqrt,
    units,
)
from .types import Metric
from .window import MarketWindow

FLOW_METRIC_NAMES = (
    "order_flow_imbalance_base",
    "realised_volatility_annualised",
    "spread_volatility_bps",
    "volume_base",
    "buy_volume_base",
    "sell_volume_base",
    "trade_flow_imbalance",
    "vwap_price",
    "trade_count",
    "trade_intensity_per_s",
    "effective_spread_bps",
    "realised_spread_bps",
    "kyle_lambda_bps_per_notional",
    "amihud_illiquidity_bps_per_notional",
)
UNITS = {
    "order_flow_imbalance_base": "base",
    "realised_volatility_annualised": "fraction_per_sqrt_year",
    "spread_volatility_bps": "bps",
    "volume_base": "base",
    "buy_volume_base": "base",
    "sell_volume_base": "base",
    "trade_flow_imbalance": "ratio",
    "vwap_price": "price",
    "trade_count": "count",
    "trade_intensity_per_s": "per_s",
    "effective_spread_bps": "bps",
    "realised_spread_bps": "bps",
    "kyle_lambda_bps_per_notional": "bps_per_quote",
    "amihud_illiquidity_bps_per_notional": "bps_per_quote",
}
SECONDS_PER_YEAR = 365 * 86_400  # crypto trades every day of the year
MIN_RETURNS = 2
MIN_SPREAD_SAMPLES = 2
MIN_BUCKETS = 3
NS_PER_S = 10**9


def null(name: str, reason: str) -> Metric:
    return Metric(None, UNITS[name], 0, reason)


def flow_metrics(window: MarketWindow, *, window_s: int, now_ns: int, buckets: int) -> dict[str, Metric]:
    """Every window metric, keyed by name in FLOW_METRIC_NAMES order."""
    start_ns = now_ns - window_s * NS_PER_S
    out: dict[str, Metric] = {}
    out.update(sample_metrics(window, start_ns, now_ns))
    out.update(trade_metrics(window, start_ns, now_ns, window_s))
    out.update(regression_metrics(window, start_ns, now_ns, buckets))
    return {name: out[name] for name in FLOW_METRIC_NAMES}


def sample_metrics(window: MarketWindow, start_ns: int, now_ns: int) -> dict[str, Metric]:
    sums = window.sample_sums(start_ns, now_ns)
    se = window.scale.size_exp
    out: dict[str, Metric] = {}
    if sums.ofi_pairs:
        out["order_flow_imbalance_base"] = Metric(units(sums.ofi_qty, se), "base", sums.ofi_pairs)
    else:
        out["order_flow_imbalance_base"] = null("order_flow_imbalance_base", "too_few_samples")
    # sigma_year = sqrt(sum r^2 / T * Y): the variance per second of the sampled path, times seconds per
    # year; with a fixed interval dt that is sqrt(mean r^2 * Y / dt). r is stored in units of 1e-18 and T
    # in ns, hence the 1e36 / 1e9 rescaling.
    if sums.return_count >= MIN_RETURNS and sums.return_span_ns > 0:
        variance = CTX.divide(Decimal(sums.return_sq_sum * SECONDS_PER_YEAR), Decimal(sums.return_span_ns) * 10**27)
        vol = quantize(sqrt(variance), PLACES_RATIO)
        out["realised_volatility_annualised"] = Metric(vol, "fraction_per_sqrt_year", sums.return_count)
    else:
        out["realised_volatility_annualised"] = null("realised_volatility_annualised", "too_few_samples")
    # Sample standard deviation of the sampled spread: (n * sum x^2 - (sum x)^2) / (n (n - 1)), exact.
    n = sums.spread_count
    if n >= MIN_SPREAD_SAMPLES:
        numerator = n * sums.spread_sq_sum - sums.spread_sum * sums.spread_sum
        stdev = sqrt(CTX.divide(Decimal(numerator), Decimal(n * (n - 1))))
        out["spread_volatility_bps"] = Metric(quantize(stdev.scaleb(-9, CTX), PLACES_BPS), "bps", n)
    else:
        out["spread_volatility_bps"] = null("spread_volatility_bps", "too_few_samples")
    return out


def trade_metrics(window: MarketWindow, start_ns: int, now_ns: int, window_s: int) -> dict[str, Metric]:
    sums = window.trade_sums(start_ns, now_ns)
    pe, se = window.scale.price_exp, window.scale.size_exp
    count = sums.count
    sided = sums.buy_qty + sums.sell_qty
    out: dict[str, Metric] = {
        "volume_base": Metric(units(sums.qty, se), "base", count),
        "trade_count": Metric(count, "count", count),
        "trade_intensity_per_s": Metric(ratio(count, window_s, PLACES_PER_S), "per_s", count),
    }
    if count and not sided:
        for name in ("buy_volume_base", "sell_volume_base", "trade_flow_imbalance"):
            out[name] = null(name, "no_aggressor_side")
    else:
        out["buy_volume_base"] = Metric(units(sums.buy_qty, se), "base", count)
        out["sell_volume_base"] = Metric(units(sums.sell_qty, se), "base", count)
        if sided:
            tfi = ratio(sums.buy_qty - sums.sell_qty, sided, PLACES_RATIO)
            out["trade_flow_imbalance"] = Metric(tfi, "ratio", count)
        else:
            out["trade_flow_imbalance"] = null("trade_flow_imbalance", "no_trades")
    if sums.qty:
        vwap = ratio(sums.notional, sums.qty, EXTRA_PRICE_PLACES).scaleb(-pe, CTX)  # price * size / size
        out["vwap_price"] = Metric(vwap, "price", count)
    else:
        out["vwap_price"] = null("vwap_price", "no_trades" if not count else "zero_volume")
    spreads = window.spread_sums(start_ns, now_ns)
    if spreads.effective_count:
        value = ratio(spreads.effective_sum, spreads.effective_count * 10**9, PLACES_BPS)
        out["effective_spread_bps"] = Metric(value, "bps", spreads.effective_count)
    else:
        out["effective_spread_bps"] = null("effective_spread_bps", "no_trades" if not count else "no_mid_before_trades")
    if spreads.realised_count:
        value = ratio(spreads.realised_sum, spreads.realised_count * 10**9, PLACES_BPS)
        out["realised_spread_bps"] = Metric(value, "bps", spreads.realised_count)
    else:
        out["realised_spread_bps"] = null("realised_spread_bps", "no_trades" if not count else "no_later_mid")
    return out


def regression_metrics(window: MarketWindow, start_ns: int, now_ns: int, buckets: int) -> dict[str, Metric]:
    """Kyle's lambda and Amihud's illiquidity over `buckets` equal sub-intervals of the window.

    Per bucket k: r_k = (m(t_k+1) - m(t_k)) / m(t_k) in bps, with m(t) the last sampled mid at or before t;
    S_k the signed notional (buyer-initiated positive) and V_k the notional of its trades, in quote units.
    lambda = sum (S - S_mean)(r - r_mean) / sum (S - S_mean)^2 (OLS slope of r on S);
    Amihud = mean over buckets with V_k > 0 of |r_k| / V_k.
    """
    notional_exp = window.scale.price_exp + window.scale.size_exp
    span = now_ns - start_ns
    edges = [start_ns + span * k // buckets for k in range(buckets + 1)]
    mids = [window.mid2_at(edge) for edge in edges]
    returns: list[Decimal] = []
    flows: list[Decimal] = []
    amihud: list[Decimal] = []
    for k in range(buckets):
        if not mids[k] or not mids[k + 1]:
            continue
        end = edges[k + 1] + (1 if k == buckets - 1 else 0)  # the last bucket includes `now`
        notional, signed = window.flow_between(edges[k], end)
        r_bps = CTX.divide(Decimal((mids[k + 1] - mids[k]) * BPS), Decimal(mids[k]))
        returns.append(r_bps)
        flows.append(units(signed, notional_exp))
        if notional:
            amihud.append(CTX.divide(abs(r_bps), units(notional, notional_exp)))
    return {
        "kyle_lambda_bps_per_notional": kyle_lambda(flows, returns),
        "amihud_illiquidity_bps_per_notional": amihud_illiquidity(amihud, has_returns=bool(returns)),
    }


def kyle_lambda(flows: list[Decimal], returns: list[Decimal]) -> Metric:
    name = "kyle_lambda_bps_per_notional"
    n = len(returns)
    if n < MIN_BUCKETS:
        return null(name, "too_few_samples")
    with localcontext(CTX):
        return _ols_slope(flows, returns)


def _ols_slope(flows: list[Decimal], returns: list[Decimal]) -> Metric:
    name, n = "kyle_lambda_bps_per_notional", len(returns)
    flow_mean = sum(flows, Decimal(0)) / n
    return_mean = sum(returns, Decimal(0)) / n
    sxx = sum(((s - flow_mean) ** 2 for s in flows), Decimal(0))
    if not sxx:
        return null(name, "no_signed_flow_variance")
    sxy = sum(((s - flow_mean) * (r - return_mean) for s, r in zip(flows, returns, strict=True)), Decimal(0))
    return Metric(significant(sxy / sxx), "bps_per_quote", n)


def amihud_illiquidity(ratios: list[Decimal], *, has_returns: bool) -> Metric:
    name = "amihud_illiquidity_bps_per_notional"
    if not ratios:
        return null(name, "zero_volume" if has_returns else "too_few_samples")
    with localcontext(CTX):  # the sum too: Decimal addition rounds in the current context
        mean = sum(ratios, Decimal(0)) / len(ratios)
    return Metric(significant(mean), "bps_per_quote", len(ratios))
