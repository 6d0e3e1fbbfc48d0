"""Benchmark: every microstructure metric of a 400-level book and a 10,000-trade window, against reading the inputs.

Run from the repository root: `.venv/bin/python bench/microstructure.py [--quick] [--write]`. The inputs are
generated once, seeded, before anything is timed: a BTC-USDT-like book (price exponent 2, size exponent 6)
of 400 levels per side with gaps of 1-300 ticks (so the ±10/50/100 bps bands cut through it), and a
`MarketWindow` holding 310 s of top-of-book samples every 100 ms and 10,000 trades spread over the last 300 s.

Variants, alternated in rounds (the order rotates every round), each timed over a batch of calls:

- `bare`: the cost of reading the inputs once: `sum(p * q)` over the 10,000 trades and a copy of the top 400
  levels of each side.
- `one window`: `compute_metrics` for the 5-minute window (every metric: the book walk plus the flow).
- `three windows`: `compute_all_windows` for 10 s, 1 m and 5 m (the book-state part computed once).
- `three calls`: `compute_metrics` called once per window (what a service that ignores the helper pays).
- `1 s of input`: `add_sample` x 10, `add_trade` x 33 and one `evict`: the per-second upkeep of the window.

Figures are medians across rounds of the per-call time; ratios to `bare` are taken within a round.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.microstructure.domain.metrics import (  # noqa: E402
    WINDOWS_S,
    MetricsParams,
    compute_all_windows,
    compute_metrics,
)
from apps.microstructure.domain.types import BUY, SELL, BookLevels, Scale, TopSample, TradeTick  # noqa: E402
from apps.microstructure.domain.window import MarketWindow  # noqa: E402
from bench.report import publish  # noqa: E402

SECTION_START = "<!-- bench:microstructure:start -->"
SECTION_END = "<!-- bench:microstructure:end -->"
MD_INTRO = (
    "# Benchmarks\n\nFigures from the scripts in `bench/`, each against a bare baseline measured in the same run.\n"
)
SCALE = Scale(price_exp=2, size_exp=6)
S = 1_000_000_000
LEVELS = 400
TRADES = 10_000
SAMPLE_NS = 100_000_000
KEEP_NS = 310 * S
NOW_NS = 1_700_000_310 * S
INSTRUMENTS = 50
TARGET_MS = 2.0
PARAMS = MetricsParams(impact_sizes=(Decimal("0.1"), Decimal("1"), Decimal("10")))


def generate(seed: int) -> tuple[BookLevels, MarketWindow, tuple[TopSample | TradeTick, ...]]:
    """The book, the filled window at NOW_NS, and one second of further input (times relative to its start)."""
    rng = random.Random(seed)
    mid = 6_000_000  # 60,000.00
    bids, asks = [], []
    price = mid - 1
    for _ in range(LEVELS):
        bids.append((price, rng.randint(1_000, 2_000_000)))  # 0.001 to 2 BTC
        price -= rng.randint(1, 300)
    price = mid + 1
    for _ in range(LEVELS):
        asks.append((price, rng.randint(1_000, 2_000_000)))
        price += rng.randint(1, 300)
    book = BookLevels(NOW_NS, tuple(bids), tuple(asks))
    window = MarketWindow(SCALE, KEEP_NS)
    start = NOW_NS - KEEP_NS
    trade_times = iter(sorted(rng.randrange(NOW_NS - 300 * S, NOW_NS) for _ in range(TRADES)))
    next_trade = next(trade_times)
    bid = mid - 1
    for ts in range(start, NOW_NS + 1, SAMPLE_NS):
        bid += rng.randint(-3, 3)
        window.add_sample(TopSample(ts, bid, rng.randint(1_000, 900_000), bid + rng.randint(1, 4), 500_000))
        while next_trade is not None and next_trade < ts + SAMPLE_NS:
            side = rng.choice((BUY, SELL, BUY, SELL, ""))
            window.add_trade(TradeTick(next_trade, bid + rng.randint(-2, 6), rng.randint(100, 500_000), side))
            next_trade = next(trade_times, None)
    # One second of further input, timestamps relative to the start of the second: a sample every 100 ms,
    # each followed by three trades (the 33/s of the window).
    second: list[TopSample | TradeTick] = []
    for k in range(10):
        ts = (k + 1) * SAMPLE_NS
        second.append(TopSample(ts, bid, 400_000, bid + 2, 500_000))
        second.extend(TradeTick(ts + j, bid + 1, 10_000, BUY if j % 2 else SELL) for j in range(3 if k else 6))
    return book, window, tuple(second)


def build_variants(book: BookLevels, window: MarketWindow, second: tuple) -> dict[str, Callable[[], object]]:
    pairs = [(trade.price, trade.qty) for trade in _trades(window)]
    assert len(pairs) >= TRADES, len(pairs)

    def bare() -> object:
        return sum(p * q for p, q in pairs), list(book.bids[:LEVELS]), list(book.asks[:LEVELS])

    def one_window() -> object:
        return compute_metrics(window, book, window_s=300, now_ns=NOW_NS, params=PARAMS)

    def three_windows() -> object:
        return compute_all_windows(window, book, now_ns=NOW_NS, params=PARAMS)

    def three_calls() -> object:
        return [compute_metrics(window, book, window_s=w, now_ns=NOW_NS, params=PARAMS) for w in WINDOWS_S]

    upkeep_window = MarketWindow(SCALE, KEEP_NS)
    state = {"second": 0}

    def one_second_of_input() -> object:
        # A copy of the generated window would be costly to make per call; this one rolls forward forever.
        base = NOW_NS + state["second"] * S
        state["second"] += 1
        for item in second:
            if isinstance(item, TopSample):
                upkeep_window.add_sample(TopSample(base + item.ts_ns, item.bid, item.bid_qty, item.ask, item.ask_qty))
            else:
                upkeep_window.add_trade(TradeTick(base + item.ts_ns, item.price, item.qty, item.aggressor))
        upkeep_window.evict(base + S)
        return None

    for _ in range(400):  # fill the upkeep window to steady state (evicting) before timing it
        one_second_of_input()
    return {
        "bare": bare,
        "one window": one_window,
        "three windows": three_windows,
        "three calls": three_calls,
        "1 s of input": one_second_of_input,
    }


def _trades(window: MarketWindow) -> list[TradeTick]:
    head = window._t_head  # the bench reads the window's columns directly, to give `bare` the same data
    return [
        TradeTick(ts, price, qty, "")
        for ts, price, qty in zip(window._t_ts[head:], window._t_price[head:], window._t_qty[head:], strict=True)
    ]


Times = dict[str, dict[str, list[float]]]  # clock ("wall", "cpu") → variant → per-call µs, one per round


def run_rounds(variants: dict[str, Callable[[], object]], rounds: int, calls: int) -> Times:
    """Per-call microseconds of each variant in each round, on the wall clock and this thread's CPU clock."""
    names = list(variants)
    times: Times = {clock: {name: [] for name in names} for clock in ("wall", "cpu")}
    for name in names:  # warm-up
        for _ in range(max(3, calls // 10)):
            variants[name]()
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            fn = variants[name]
            gc.collect()
            started, cpu = time.perf_counter_ns(), time.thread_time_ns()
            for _ in range(calls):
                fn()
            times["cpu"][name].append((time.thread_time_ns() - cpu) / calls / 1_000)
            times["wall"][name].append((time.perf_counter_ns() - started) / calls / 1_000)
    return times


def profile(fn: Callable[[], object], calls: int, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def render(args: argparse.Namespace, times: Times, facts: dict[str, str]) -> str:
    med = {clock: {name: statistics.median(v) for name, v in per.items()} for clock, per in times.items()}
    rows = []
    for name in times["wall"]:
        cells = []
        for clock in ("wall", "cpu"):
            values, bare = times[clock][name], times[clock]["bare"]
            ratios = (v / b for v, b in zip(values, bare, strict=True))
            ratio = "—" if name == "bare" else f"{statistics.median(ratios):.2f}"
            cells += [f"{med[clock][name]:,.1f}", f"{min(values):,.1f} to {max(values):,.1f}", ratio]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    cpu, wall = med["cpu"], med["wall"]
    per_instrument_us = cpu["three windows"] + cpu["1 s of input"]
    per_instrument_wall_us = wall["three windows"] + wall["1 s of input"]
    share = per_instrument_us * INSTRUMENTS / 1e6
    verdict = "meets" if per_instrument_us / 1000 < TARGET_MS else "misses"
    return "\n".join(
        [
            SECTION_START,
            "## Microstructure metrics (issue 5)",
            "",
            "Every metric (29, `METRIC_NAMES`) of one book from `apps/microstructure/domain/`, pure Python, against "
            "the bare cost of reading the same inputs once. Generated by the command below; do not edit between "
            "the markers.",
            "",
            f"- Command: `{facts['command']}` (from the repository root)",
            f"- Date: {facts['date']}",
            f"- Machine: {facts['machine']}",
            f"- Input: a book of {LEVELS} levels per side (gaps of 1-300 ticks at 60,000.00, so the bands cut "
            f"through it), a window of {TRADES:,} trades over the last 300 s and a sample every 100 ms for 310 s; "
            f"impact sizes 0.1, 1 and 10 BTC; depth over the top {PARAMS.depth_levels} levels; "
            f"{PARAMS.regression_buckets} regression buckets.",
            f"- Method: {args.rounds} rounds of {args.calls} calls per variant, alternating (order rotated every "
            "round), after a warm-up; figures are medians of the per-call time across rounds, on the wall clock "
            "and on this thread's CPU clock (what a core is busy for; less disturbed by other work on the "
            "machine); the ratios are medians of each round's ratio to `bare`.",
            "",
            "| variant | wall µs per call | range | / bare | CPU µs per call | range | / bare |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"- Per instrument per 1 Hz update, all three windows plus one second of window upkeep: "
            f"**{per_instrument_us / 1000:.3f} ms of CPU** ({per_instrument_wall_us / 1000:.3f} ms wall); "
            f"target {TARGET_MS:.0f} ms: {verdict} it.",
            f"- {INSTRUMENTS} instruments at 1 Hz: **{share:.1%} of one core** "
            f"({INSTRUMENTS} x {per_instrument_us:,.0f} µs of CPU per second).",
            f"- One window alone: {cpu['one window'] / 1000:.3f} ms of CPU; three windows through "
            f"`compute_all_windows` cost {cpu['three windows'] / cpu['one window']:.2f}x one window (the book "
            f"walk is shared), three separate `compute_metrics` calls {cpu['three calls'] / cpu['one window']:.2f}x.",
            SECTION_END,
            "",
        ]
    )


def machine_facts(core: int | None, argv: list[str]) -> dict[str, str]:
    pin = f"pinned to core {core}" if core is not None else "not pinned"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return {
        "command": " ".join([".venv/bin/python", "bench/microstructure.py", *argv]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"nproc {os.cpu_count()}, {pin}, load average {load} at start; Python {platform.python_version()}",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section in BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 20 calls: a smoke run")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200, help="calls per variant per round")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of `three windows`")
    parser.add_argument("--core", type=int, default=1, help="CPU to pin this process to (-1: no pinning)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls = 3, 20
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    started = time.perf_counter()
    book, window, second = generate(args.seed)
    variants = build_variants(book, window, second)
    print(f"generated inputs in {time.perf_counter() - started:.1f} s", flush=True)
    core = args.core if args.core >= 0 and args.core < (os.cpu_count() or 1) else None
    if core is not None:
        os.sched_setaffinity(0, {core})
    facts = machine_facts(core, argv)
    times = run_rounds(variants, args.rounds, args.calls)
    if args.profile:
        print(profile(variants["three windows"], args.calls, 20))
    section = render(args, times, facts)
    publish(section, write=args.write, start=SECTION_START, end=SECTION_END, intro=MD_INTRO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
