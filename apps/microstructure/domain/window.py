"""Rolling trades and top-of-book samples of one book, with prefix sums so a window query is O(log n).

Every per-trade and per-sample quantity a metric needs is an integer (fixed-point units, or a fixed scale
such as nano-bps), kept as a running prefix sum; the sum over any time window is a difference of two
entries found by bisection on the sorted timestamps. Integer sums are exact, so a window maintained
incrementally (with evictions) gives exactly the same figures as one built from only the inputs it keeps.

Trades may arrive with a timestamp slightly earlier than the previous one (venue clocks, merged venues):
they are inserted at their place in time and the prefix sums after that place are rebuilt (a short tail).
Samples come from our own fixed-interval sampler and must arrive in time order; a sample not later than
the last one is ignored.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from .types import BUY, SELL, Scale, TopSample, TradeTick

NANO_BPS = 10**13  # 1 bps = 1e-4, stored in units of 1e-9 bps: ratio * 1e4 * 1e9
RETURN_SCALE = 10**18  # sampled mid returns are stored in units of 1e-18
COMPACT_AFTER = 4096  # evicted entries are sliced off the lists once this many have accumulated


def div_round(num: int, den: int) -> int:
    """num / den rounded to the nearest integer, halves away from minus infinity (den > 0)."""
    quotient, remainder = divmod(num, den)
    return quotient + 1 if 2 * remainder >= den else quotient


@dataclass(frozen=True, slots=True)
class TradeSums:
    """Sums over the trades of one time range (quantities in size units, notionals in price*size units)."""

    count: int
    qty: int
    buy_qty: int
    sell_qty: int
    notional: int
    signed_notional: int  # buyer-initiated positive; trades without an aggressor side count 0


@dataclass(frozen=True, slots=True)
class SpreadSums:
    """Effective and realised spreads over the trades of one time range, in nano-bps (1e-9 bps)."""

    effective_sum: int
    effective_count: int  # trades with a two-sided sample at or before them
    realised_sum: int
    realised_count: int  # trades with a side, a mid before them and a mid `horizon` later


@dataclass(frozen=True, slots=True)
class SampleSums:
    """Sums over the samples of one time range; pair sums cover consecutive samples both in the range."""

    samples: int
    ofi_qty: int  # Cont-Kukanov-Stoikov order-flow imbalance, size units
    ofi_pairs: int
    return_sq_sum: int  # squared simple mid returns, units of 1e-36
    return_count: int
    return_span_ns: int  # time covered by the counted returns
    spread_sum: int  # sampled spread, nano-bps
    spread_sq_sum: int
    spread_count: int


class MarketWindow:
    """Rolling trades and top-of-book samples of one book (a venue book or consolidated), pure, no clock."""

    def __init__(
        self,
        scale: Scale,
        keep_ns: int,
        *,
        realised_horizon_ns: int = 5_000_000_000,
        trades_from_ns: int | None = None,
    ) -> None:
        self.scale = scale
        self.keep_ns = keep_ns
        self.realised_horizon_ns = realised_horizon_ns
        # Since when the window holds every trade and every sample of its book (its owner says so for trades:
        # when it started listening, or how far back it preloaded; samples count from the first one).
        # A window younger than a metric's span covers only part of it: see `coverage`.
        self.trades_from_ns = trades_from_ns
        self._trades_from_data = trades_from_ns is None
        self.samples_from_ns: int | None = None
        # Trades, sorted by ts; the entries before _t_head are evicted and await compaction.
        self._t_head = 0
        self._t_ts: list[int] = []
        self._t_price: list[int] = []
        self._t_qty: list[int] = []
        self._t_sign: list[int] = []
        self._t_m2: list[int] = []  # bid + ask (twice the mid) of the sample at or before the trade, 0: none
        self._t_real: list[int | None] = []  # realised spread, set once a mid `horizon` later is known
        # Prefix sums: _c_x[i] is the sum over trades [0, i).
        self._c_qty = [0]
        self._c_buy = [0]
        self._c_sell = [0]
        self._c_notional = [0]
        self._c_signed = [0]
        self._c_eff = [0]
        self._c_eff_n = [0]
        # Realised spreads resolve in time order: _c_real covers trades [0, _real_next).
        self._real_next = 0
        self._c_real = [0]
        self._c_real_n = [0]
        # Samples, sorted by ts; pair values (OFI, returns) sit at the later sample of the pair.
        self._s_head = 0
        self._s_ts: list[int] = []
        self._s_m2: list[int] = []  # bid + ask, 0 when a side is empty
        self._last_sample: TopSample | None = None
        self._c_ofi = [0]
        self._c_ofi_n = [0]
        self._c_r2 = [0]
        self._c_ret_n = [0]
        self._c_dt = [0]
        self._c_spr = [0]
        self._c_spr2 = [0]
        self._c_spr_n = [0]

    # --- input -------------------------------------------------------------------------------------

    def add_trade(self, trade: TradeTick) -> None:
        """Add a trade, in arrival order; a timestamp earlier than the last one is placed in time order."""
        if self._trades_from_data and (self.trades_from_ns is None or trade.ts_ns < self.trades_from_ns):
            self.trades_from_ns = trade.ts_ns  # an owner that said nothing: from the earliest trade on
        sign = 1 if trade.aggressor == BUY else -1 if trade.aggressor == SELL else 0
        m2 = self._m2_at(trade.ts_ns)
        ts_list = self._t_ts
        if not ts_list or trade.ts_ns >= ts_list[-1]:
            ts_list.append(trade.ts_ns)
            self._t_price.append(trade.price)
            self._t_qty.append(trade.qty)
            self._t_sign.append(sign)
            self._t_m2.append(m2)
            self._t_real.append(None)
            self._append_trade_sums(len(ts_list) - 1)
            self._resolve_realised()
            return
        index = bisect_right(ts_list, trade.ts_ns, lo=self._t_head)
        ts_list.insert(index, trade.ts_ns)
        self._t_price.insert(index, trade.price)
        self._t_qty.insert(index, trade.qty)
        self._t_sign.insert(index, sign)
        self._t_m2.insert(index, m2)
        self._t_real.insert(index, None)
        for prefix in self._trade_prefixes():
            del prefix[index + 1 :]
        for i in range(index, len(ts_list)):
            self._append_trade_sums(i)
        if index < self._real_next:
            # Every trade before _real_next was resolvable, and this one is no later than them.
            self._t_real[index] = self._realised(index)
            self._real_next += 1
            del self._c_real[index + 1 :], self._c_real_n[index + 1 :]
            for i in range(index, self._real_next):
                self._append_realised(i)
        self._resolve_realised()

    def add_sample(self, sample: TopSample) -> None:
        """Add a top-of-book sample; the sampler's clock only moves forward, so an older one is ignored."""
        previous = self._last_sample
        if previous is not None and sample.ts_ns <= previous.ts_ns:
            return
        two_sided = sample.bid > 0 and sample.ask > 0
        m2 = sample.bid + sample.ask if two_sided else 0
        ofi = ofi_n = r2 = ret_n = dt = 0
        if previous is not None and two_sided and previous.bid > 0 and previous.ask > 0:
            ofi, ofi_n = ofi_contribution(previous, sample), 1
            prev_m2 = previous.bid + previous.ask
            ret = div_round((m2 - prev_m2) * RETURN_SCALE, prev_m2)
            r2, ret_n, dt = ret * ret, 1, sample.ts_ns - previous.ts_ns
        spr = spr_n = 0
        if two_sided:
            spr, spr_n = div_round(2 * (sample.ask - sample.bid) * NANO_BPS, m2), 1
        self._s_ts.append(sample.ts_ns)
        self._s_m2.append(m2)
        self._last_sample = sample
        if self.samples_from_ns is None:
            self.samples_from_ns = sample.ts_ns
        self._c_ofi.append(self._c_ofi[-1] + ofi)
        self._c_ofi_n.append(self._c_ofi_n[-1] + ofi_n)
        self._c_r2.append(self._c_r2[-1] + r2)
        self._c_ret_n.append(self._c_ret_n[-1] + ret_n)
        self._c_dt.append(self._c_dt[-1] + dt)
        self._c_spr.append(self._c_spr[-1] + spr)
        self._c_spr2.append(self._c_spr2[-1] + spr * spr)
        self._c_spr_n.append(self._c_spr_n[-1] + spr_n)
        self._resolve_realised()

    def evict(self, now_ns: int) -> None:
        """Drop trades older than now - keep_ns, and samples before the last one at or before that time."""
        cutoff = now_ns - self.keep_ns
        self._t_head = bisect_left(self._t_ts, cutoff, lo=self._t_head)
        while self._real_next < self._t_head:  # evicted before a later mid arrived: never counted
            self._real_next += 1
            self._c_real.append(self._c_real[-1])
            self._c_real_n.append(self._c_real_n[-1])
        # The last sample at or before the cutoff stays: it is the mid at the start of the kept span.
        self._s_head = max(self._s_head, bisect_right(self._s_ts, cutoff, lo=self._s_head) - 1)
        if self._t_head > COMPACT_AFTER and 2 * self._t_head > len(self._t_ts):
            self._compact_trades()
        if self._s_head > COMPACT_AFTER and 2 * self._s_head > len(self._s_ts):
            self._compact_samples()

    # --- queries (used by the metric formulas) --------------------------------------------------------

    def coverage(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """How much of [start, end] the window saw, in ns: (of its trades, of its samples)."""
        span = end_ns - start_ns

        def seen(since: int | None) -> int:
            return 0 if since is None else max(0, min(span, end_ns - max(since, start_ns)))

        return seen(self.trades_from_ns), seen(self.samples_from_ns)

    @property
    def trade_total(self) -> int:
        return len(self._t_ts) - self._t_head

    @property
    def sample_total(self) -> int:
        return len(self._s_ts) - self._s_head

    def trade_range(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """Indices [lo, hi) of the trades with start_ns <= ts <= end_ns."""
        lo = bisect_left(self._t_ts, start_ns, lo=self._t_head)
        return lo, bisect_right(self._t_ts, end_ns, lo=lo)

    def trade_sums(self, start_ns: int, end_ns: int) -> TradeSums:
        lo, hi = self.trade_range(start_ns, end_ns)
        return TradeSums(
            count=hi - lo,
            qty=self._c_qty[hi] - self._c_qty[lo],
            buy_qty=self._c_buy[hi] - self._c_buy[lo],
            sell_qty=self._c_sell[hi] - self._c_sell[lo],
            notional=self._c_notional[hi] - self._c_notional[lo],
            signed_notional=self._c_signed[hi] - self._c_signed[lo],
        )

    def flow_between(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """(notional, signed notional) of the trades with start_ns <= ts < end_ns: one regression bucket."""
        lo = bisect_left(self._t_ts, start_ns, lo=self._t_head)
        hi = bisect_left(self._t_ts, end_ns, lo=lo)
        return self._c_notional[hi] - self._c_notional[lo], self._c_signed[hi] - self._c_signed[lo]

    def spread_sums(self, start_ns: int, end_ns: int) -> SpreadSums:
        lo, hi = self.trade_range(start_ns, end_ns)
        rlo, rhi = min(lo, self._real_next), min(hi, self._real_next)
        return SpreadSums(
            effective_sum=self._c_eff[hi] - self._c_eff[lo],
            effective_count=self._c_eff_n[hi] - self._c_eff_n[lo],
            realised_sum=self._c_real[rhi] - self._c_real[rlo],
            realised_count=self._c_real_n[rhi] - self._c_real_n[rlo],
        )

    def sample_sums(self, start_ns: int, end_ns: int) -> SampleSums:
        lo = bisect_left(self._s_ts, start_ns, lo=self._s_head)
        hi = bisect_right(self._s_ts, end_ns, lo=lo)
        first_pair = min(lo + 1, hi)  # the pair value at sample `lo` pairs it with one outside the range
        return SampleSums(
            samples=hi - lo,
            ofi_qty=self._c_ofi[hi] - self._c_ofi[first_pair],
            ofi_pairs=self._c_ofi_n[hi] - self._c_ofi_n[first_pair],
            return_sq_sum=self._c_r2[hi] - self._c_r2[first_pair],
            return_count=self._c_ret_n[hi] - self._c_ret_n[first_pair],
            return_span_ns=self._c_dt[hi] - self._c_dt[first_pair],
            spread_sum=self._c_spr[hi] - self._c_spr[lo],
            spread_sq_sum=self._c_spr2[hi] - self._c_spr2[lo],
            spread_count=self._c_spr_n[hi] - self._c_spr_n[lo],
        )

    def mid2_at(self, ts_ns: int) -> int:
        """bid + ask (twice the mid, price units) of the last sample at or before ts_ns; 0 when none."""
        return self._m2_at(ts_ns)

    # --- internals ------------------------------------------------------------------------------------

    def _m2_at(self, ts_ns: int) -> int:
        index = bisect_right(self._s_ts, ts_ns, lo=self._s_head) - 1
        return self._s_m2[index] if index >= self._s_head else 0

    def _trade_prefixes(self) -> tuple[list[int], ...]:
        return (
            self._c_qty,
            self._c_buy,
            self._c_sell,
            self._c_notional,
            self._c_signed,
            self._c_eff,
            self._c_eff_n,
        )

    def _append_trade_sums(self, i: int) -> None:
        price, qty, sign, m2 = self._t_price[i], self._t_qty[i], self._t_sign[i], self._t_m2[i]
        notional = price * qty
        self._c_qty.append(self._c_qty[-1] + qty)
        self._c_buy.append(self._c_buy[-1] + (qty if sign > 0 else 0))
        self._c_sell.append(self._c_sell[-1] + (qty if sign < 0 else 0))
        self._c_notional.append(self._c_notional[-1] + notional)
        self._c_signed.append(self._c_signed[-1] + sign * notional)
        if m2:
            # Effective spread 2|p - m| / m = 2|2p - (bid + ask)| / (bid + ask).
            self._c_eff.append(self._c_eff[-1] + div_round(2 * abs(2 * price - m2) * NANO_BPS, m2))
            self._c_eff_n.append(self._c_eff_n[-1] + 1)
        else:
            self._c_eff.append(self._c_eff[-1])
            self._c_eff_n.append(self._c_eff_n[-1])

    def _realised(self, i: int) -> int | None:
        """Realised spread 2d(p - m') / m in nano-bps, m at the trade and m' the first mid `horizon` later."""
        sign, m2 = self._t_sign[i], self._t_m2[i]
        if not sign or not m2:
            return None
        later = bisect_left(self._s_ts, self._t_ts[i] + self.realised_horizon_ns, lo=self._s_head)
        later_m2 = self._s_m2[later] if later < len(self._s_ts) else 0
        if not later_m2:
            return None
        return div_round(2 * sign * (2 * self._t_price[i] - later_m2) * NANO_BPS, m2)

    def _append_realised(self, i: int) -> None:
        value = self._t_real[i]
        self._c_real.append(self._c_real[-1] + (value or 0))
        self._c_real_n.append(self._c_real_n[-1] + (value is not None))

    def _resolve_realised(self) -> None:
        if not self._s_ts:
            return
        horizon_end = self._s_ts[-1] - self.realised_horizon_ns
        ts_list, n = self._t_ts, len(self._t_ts)
        while self._real_next < n and ts_list[self._real_next] <= horizon_end:
            i = self._real_next
            self._t_real[i] = self._realised(i)
            self._append_realised(i)
            self._real_next += 1

    def _compact_trades(self) -> None:
        head = self._t_head
        for values in (self._t_ts, self._t_price, self._t_qty, self._t_sign, self._t_m2, self._t_real):
            del values[:head]
        for prefix in (*self._trade_prefixes(), self._c_real, self._c_real_n):
            del prefix[:head]
        self._real_next -= head
        self._t_head = 0

    def _compact_samples(self) -> None:
        head = self._s_head
        del self._s_ts[:head], self._s_m2[:head]
        for prefix in (
            self._c_ofi,
            self._c_ofi_n,
            self._c_r2,
            self._c_ret_n,
            self._c_dt,
            self._c_spr,
            self._c_spr2,
            self._c_spr_n,
        ):
            del prefix[:head]
        self._s_head = 0


def ofi_contribution(previous: TopSample, current: TopSample) -> int:
    """Cont, Kukanov and Stoikov (2014) e_n between two consecutive two-sided samples, in size units."""
    e_n = 0
    if current.bid >= previous.bid:
        e_n += current.bid_qty
    if current.bid <= previous.bid:
        e_n -= previous.bid_qty
    if current.ask <= previous.ask:
        e_n -= current.ask_qty
    if current.ask >= previous.ask:
        e_n += previous.ask_qty
    return e_n
