"""Benchmark: a simulated Binance diff stream through connector, engine and bus, against a bare parse-and-update loop.

Run from the repository root: `.venv/bin/python bench/ingest.py [--write]`. The frames (combined-stream
`depthUpdate` text, as the socket delivers it) and the REST snapshot they continue are generated once, before
anything is timed, by a seeded `SimulatedMarket`. Every variant then walks the same frame list, in order,
from its own cursor, in rounds that alternate the variants (the order rotates every round):

- `bare`: `orjson.loads` and a `SortedDict` per side keyed by `float(price)`, zero quantity deletes.
- `connector`: `BinanceProtocol.on_message` alone (parse, U/u chain, fixed-point book, BookChange).
- `in-process`: the embedded path, connector outputs through `FeedPublisher.handle` into `InProcessBus`.
- `redis`: the same into `RedisBus` (one Lua call per event, pipelined per message) on a flushed bench db.

Only the processing of frames is timed; when a cursor reaches the end of the list its variant starts over
from the snapshot, untimed. Figures are medians across rounds, ratios are taken within a round.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import redis
from sortedcontainers import SortedDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.orderbook.domain.events import InstrumentSpec  # noqa: E402
from apps.orderbook.domain.protocol import Fetch, Output, Reconnect, Send  # noqa: E402
from apps.orderbook.domain.simulator import SimulatedMarket  # noqa: E402
from apps.orderbook.domain.venues.binance import BinanceProtocol  # noqa: E402
from apps.orderbook.services.bus import InProcessBus, MarketDataBus, RedisBus  # noqa: E402
from apps.orderbook.services.publisher import FeedPublisher, Precision  # noqa: E402
from bench.report import publish  # noqa: E402

SECTION_START = "<!-- ingest:start -->"
SECTION_END = "<!-- ingest:end -->"
MD_INTRO = (
    "# Benchmarks\n\nFigures from the scripts in `bench/`, each against a bare baseline measured in the same run.\n"
)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
VENUE, SYMBOL, VENUE_SYMBOL = "binance", "BTC-USDT", "BTCUSDT"
STREAM = "btcusdt@depth@100ms"
# The feed default (FeedConfig.price_decimals / size_decimals) and the HFT_DELTA_HISTORY default.
PRICE_EXP = SIZE_EXP = 8
HISTORY_LENGTH = 100_000
STEP_NS = 100_000_000  # one frame per 100 ms of simulated time, like @depth@100ms
BATCH = 256  # frames per timed slice: the clock is read around slices, not around every frame
MSGS_TARGET = 20_000.0
RATIO_TARGET = 0.40
VARIANTS = ("bare", "connector", "venue-only", "in-process", "redis")
CONTROL = (Send, Fetch, Reconnect)


@dataclass(frozen=True)
class Stream:
    """The generated input: the snapshot body, the frame that syncs on it, then the frames to replay."""

    snapshot_text: str
    frames: list[str]
    levels: list[int]  # changed levels per frame
    steps_per_frame: int
    snapshot_levels: int

    @property
    def mean_bytes(self) -> float:
        return statistics.fmean(len(f) for f in self.frames)


def generate(frame_count: int, steps_per_frame: int, seed: int) -> Stream:
    market = SimulatedMarket(
        VENUE_SYMBOL, mid_price="60000.00", tick_size_exp=2, size_exp=6, rng=random.Random(seed), levels=200
    )
    now_ns = 1_700_000_000_000_000_000
    for _ in range(20_000):  # let the book settle into its steady shape before the snapshot
        market.step(now_ns)
    market.drain_depth_update(now_ns // 1_000_000)
    snapshot = market.snapshot(1000)
    frames: list[str] = []
    levels: list[int] = []
    while len(frames) < frame_count:
        now_ns += STEP_NS
        for _ in range(steps_per_frame):
            market.step(now_ns)
        data = market.drain_depth_update(now_ns // 1_000_000)
        if data is None:
            continue
        frames.append(orjson.dumps({"stream": STREAM, "data": data}).decode())
        levels.append(len(data["b"]) + len(data["a"]))
    snapshot_levels = len(snapshot["bids"]) + len(snapshot["asks"])
    return Stream(orjson.dumps(snapshot).decode(), frames, levels, steps_per_frame, snapshot_levels)


class Variant:
    """One path over the frames: `reset` (untimed) rebuilds its state from the snapshot and the first frame."""

    name = ""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.cursor = 0

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, frames: list[str]) -> None:
        raise NotImplementedError

    def next_batch(self, size: int) -> list[str]:
        if self.cursor == 0 or self.cursor >= len(self.stream.frames):
            self.reset()
            self.cursor = 1  # frame 0 went into the sync
        batch = self.stream.frames[self.cursor : self.cursor + size]
        self.cursor += len(batch)
        return batch

    def run_block(self, min_s: float) -> tuple[int, int, int]:
        """(frames, wall ns, CPU ns): slices until at least `min_s` of processing was timed on the wall clock."""
        count = wall_ns = cpu_ns = 0
        while wall_ns < min_s * 1e9:
            batch = self.next_batch(BATCH)
            wall, cpu = time.perf_counter_ns(), time.process_time_ns()
            self.process(batch)
            cpu_ns += time.process_time_ns() - cpu
            wall_ns += time.perf_counter_ns() - wall
            count += len(batch)
        return count, wall_ns, cpu_ns


class Bare(Variant):
    name = "bare"

    def reset(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        snapshot = orjson.loads(self.stream.snapshot_text)
        _bare_levels(self.bids, snapshot["bids"])
        _bare_levels(self.asks, snapshot["asks"])
        self.process(self.stream.frames[:1])

    def process(self, frames: list[str]) -> None:
        loads, bids, asks = orjson.loads, self.bids, self.asks
        for text in frames:
            data = loads(text)["data"]
            for price, qty in data["b"]:
                size = float(qty)
                if size:
                    bids[float(price)] = size
                else:
                    bids.pop(float(price), None)
            for price, qty in data["a"]:
                size = float(qty)
                if size:
                    asks[float(price)] = size
                else:
                    asks.pop(float(price), None)


def _bare_levels(side: SortedDict, levels: list[list[str]]) -> None:
    for price, qty in levels:
        side[float(price)] = float(qty)


class Connector(Variant):
    """BinanceProtocol synced on the snapshot; subclasses hand its outputs on."""

    name = "connector"

    def reset(self) -> None:
        spec = InstrumentSpec(SYMBOL, VENUE_SYMBOL, PRICE_EXP, SIZE_EXP)
        self.protocol = BinanceProtocol([spec], venue=VENUE)
        (fetch,) = self.protocol.on_open(time.time_ns())
        assert isinstance(fetch, Fetch)
        assert self.protocol.on_message(self.stream.frames[0], time.time_ns()) == []
        outputs = self.protocol.on_rest(fetch.key, 200, self.stream.snapshot_text, time.time_ns())
        if not outputs or any(isinstance(o, CONTROL) for o in outputs):
            raise RuntimeError(f"the snapshot did not sync the book: {outputs}")
        self.sink(outputs)

    def sink(self, outputs: list[Output]) -> None:
        pass

    def process(self, frames: list[str]) -> None:
        on_message, clock = self.protocol.on_message, time.time_ns
        for text in frames:
            on_message(text, clock())


class Published(Connector):
    """The feed runner's dispatch: control outputs go to the socket, the rest to the publisher."""

    def __init__(
        self, stream: Stream, name: str, make_bus: Callable[[], MarketDataBus], *, consolidate: bool = True
    ) -> None:
        super().__init__(stream)
        self.name = name
        self.make_bus = make_bus
        self.consolidate = consolidate
        self.events = 0

    def reset(self) -> None:
        prec = Precision(PRICE_EXP, SIZE_EXP)
        self.publisher = FeedPublisher(
            self.make_bus(), {(VENUE, SYMBOL): prec}, {SYMBOL: prec}, time.time_ns, consolidate=self.consolidate
        )
        super().reset()

    def sink(self, outputs: list[Output]) -> None:
        self.events += len(self.publisher.handle(outputs))

    def process(self, frames: list[str]) -> None:
        on_message, handle, clock = self.protocol.on_message, self.publisher.handle, time.time_ns
        for text in frames:
            outputs = on_message(text, clock())
            platform_outputs = [o for o in outputs if not isinstance(o, CONTROL)]
            if len(platform_outputs) != len(outputs):
                raise RuntimeError(f"the replay lost sync: {outputs}")
            if platform_outputs:
                handle(platform_outputs)


CLOCKS = ("wall", "cpu")
ProfileRows = list[tuple[str, float, float]]  # (function, share of own time, share with callees)


@dataclass
class Results:
    """Per clock and variant, one messages/s figure per round."""

    rates: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {c: {v: [] for v in VARIANTS} for c in CLOCKS}
    )
    frames: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VARIANTS, 0))

    def median(self, variant: str, clock: str = "wall") -> float:
        return statistics.median(self.rates[clock][variant])

    def ratios(self, variant: str, clock: str = "wall") -> list[float]:
        rates = self.rates[clock]
        return [ours / bare for ours, bare in zip(rates[variant], rates["bare"], strict=True)]

    def median_ratio(self, variant: str, clock: str = "wall") -> float:
        return statistics.median(self.ratios(variant, clock))


def build_variants(stream: Stream, client: redis.Redis) -> dict[str, Variant]:
    variants: list[Variant] = [
        Bare(stream),
        Connector(stream),
        Published(stream, "venue-only", lambda: InProcessBus(HISTORY_LENGTH), consolidate=False),
        Published(stream, "in-process", lambda: InProcessBus(HISTORY_LENGTH)),
        Published(stream, "redis", lambda: RedisBus(client, HISTORY_LENGTH)),
    ]
    return {v.name: v for v in variants}


def run_rounds(variants: dict[str, Variant], rounds: int, block_s: float, warmup_s: float) -> Results:
    for variant in variants.values():
        variant.run_block(warmup_s)
    results = Results()
    for index in range(rounds):
        order = VARIANTS[index % len(VARIANTS) :] + VARIANTS[: index % len(VARIANTS)]
        line = []
        for name in order:
            count, wall_ns, cpu_ns = variants[name].run_block(block_s)
            results.rates["wall"][name].append(count * 1e9 / wall_ns)
            results.rates["cpu"][name].append(count * 1e9 / max(cpu_ns, 1))
            results.frames[name] += count
            line.append(f"{name} {count * 1e9 / wall_ns:,.0f}/s ({cpu_ns / wall_ns:.0%} CPU)")
        print(f"round {index + 1}/{rounds}: " + ", ".join(line), flush=True)
    return results


def profile_in_process(stream: Stream, frame_count: int, top: int) -> tuple[str, ProfileRows, float]:
    """cProfile over a fresh in-process path (not timed): the report, the top rows and events per frame."""
    variant = Published(stream, "in-process", lambda: InProcessBus(HISTORY_LENGTH))
    variant.reset()
    frames = stream.frames[1 : 1 + frame_count]
    publisher = variant.publisher
    before = sum(r.seq for r in publisher.replicas.values())
    profiler = cProfile.Profile()
    profiler.runcall(variant.process, frames)
    events_per_frame = (sum(r.seq for r in publisher.replicas.values()) - before) / len(frames)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    raw: Any = stats.stats
    total = sum(row[2] for row in raw.values())
    rows = sorted(((_func_name(func), row[2], row[3]) for func, row in raw.items()), key=lambda r: -r[1])
    return out.getvalue(), [(n, tt / total, ct / total) for n, tt, ct in rows[:top]], events_per_frame


def _func_name(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    path = Path(filename)
    shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT / "apps") else path.name
    return f"{shown}:{line}({name})"


def percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(
    args: argparse.Namespace,
    stream: Stream,
    res: Results,
    facts: dict[str, str],
    rows: ProfileRows,
    events_per_frame: float,
) -> str:
    lines = [
        SECTION_START,
        "## Ingest: connector, engine, bus (issue 3)",
        "",
        f"Command: `{facts['command']}` — {facts['date']}; {facts['machine']}.",
        "",
        f"Stream: {len(stream.frames):,} combined-stream `depthUpdate` frames from a seeded `SimulatedMarket` "
        f"(seed {args.seed}, {stream.steps_per_frame} order-flow steps per frame), mean {stream.mean_bytes:.0f} "
        f"bytes; changed levels per frame mean {statistics.fmean(stream.levels):.1f}, median "
        f"{statistics.median(stream.levels):.0f}, p90 {percentile(stream.levels, 0.9)}; snapshot of "
        f"{stream.snapshot_levels} levels. Instrument at the feed default precision ({PRICE_EXP}/{SIZE_EXP}).",
        "",
        f"{args.rounds} rounds, each variant at least {args.block_s:g} s per round (order rotating), after a "
        f"{args.warmup_s:g} s warm-up each. GC enabled (defaults). Frames per variant over the rounds: "
        + ", ".join(f"{v} {res.frames[v]:,}" for v in VARIANTS)
        + ".",
        "",
        "| variant | messages/s, wall (median) | range | / bare, wall | messages per CPU-s (median) | range "
        "| / bare, CPU | CPU share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in VARIANTS:
        cells = []
        for clock in CLOCKS:
            rates = res.rates[clock][name]
            ratio = "—" if name == "bare" else f"{res.median_ratio(name, clock):.1%}"
            cells += [f"{res.median(name, clock):,.0f}", f"{min(rates):,.0f} to {max(rates):,.0f}", ratio]
        share = statistics.median(w / c for w, c in zip(res.rates["wall"][name], res.rates["cpu"][name], strict=True))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {share:.0%} |")
    inproc, ratio = res.median("in-process"), res.median_ratio("in-process")
    inproc_cpu, ratio_cpu = res.median("in-process", "cpu"), res.median_ratio("in-process", "cpu")
    lines += [
        "",
        "- `bare`: `orjson.loads`, then per level `float()` of price and quantity into a `SortedDict` per side, "
        "zero deletes. Floats are not acceptable for prices in the product; here they make the cheapest honest "
        "baseline.",
        "- `connector`: `BinanceProtocol.on_message` alone: parse, U/u chain, exact fixed-point book, "
        "crossed-book check, `BookChange`.",
        "- `venue-only`: connector + `FeedPublisher(consolidate=False)` + `InProcessBus`: the venue book only, "
        "as a Celery feed runner publishes it (the consolidator folds venues in its own process).",
        f"- `in-process`: connector + `FeedPublisher.handle` + `InProcessBus` (venue and consolidated book: "
        f"{events_per_frame:.2f} events per frame, each kept in a replica; checkpoints once a second). No hub "
        "listener is subscribed.",
        f"- `redis`: the same into `RedisBus` at `{args.redis_url}` (flushed first): one Lua call per event, "
        "pipelined into one round trip per frame, plus a checkpoint `SET` per book per second. The Redis "
        "server is not pinned and shares the machine.",
        "",
        "### Targets",
        "",
        f"- ≥ {MSGS_TARGET:,.0f} depth messages/s on one core (in-process): wall clock "
        f"{verdict(inproc >= MSGS_TARGET)} ({inproc:,.0f}/s); per CPU-second {verdict(inproc_cpu >= MSGS_TARGET)} "
        f"({inproc_cpu:,.0f}/s).",
        f"- ≥ {RATIO_TARGET:.0%} of the bare loop (in-process): wall clock {verdict(ratio >= RATIO_TARGET)} "
        f"({ratio:.1%}); CPU time {verdict(ratio_cpu >= RATIO_TARGET)} ({ratio_cpu:.1%}).",
        f"- Venue-only (the per-venue feed runner of production): {res.median('venue-only'):,.0f}/s, "
        f"{res.median_ratio('venue-only'):.1%} of bare.",
        f"- Redis, for reference: {res.median('redis'):,.0f}/s wall, {res.median_ratio('redis'):.1%} of bare "
        "(its CPU figure leaves out the round trip it waits on, so only the wall clock counts for it).",
        "",
        f"### Where the in-process path spends its time (cProfile, {args.profile_frames:,} frames, untimed)",
        "",
        "| function | own time | with callees |",
        "|---|---:|---:|",
        *(f"| `{name}` | {own:.1%} | {cum:.1%} |" for name, own, cum in rows[:10]),
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def machine_facts(core: int | None, argv: list[str]) -> dict[str, str]:
    pin = f"pinned to core {core}" if core is not None else "not pinned"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    libs = ", ".join(f"{lib} {version(lib)}" for lib in ("orjson", "sortedcontainers", "redis"))
    return {
        "command": " ".join([".venv/bin/python", "bench/ingest.py", *argv]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"nproc {os.cpu_count()}, {pin}, load average {load} at start; "
        f"Python {platform.python_version()}; {libs}",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section in BENCHMARKS.md")
    parser.add_argument("--frames", type=int, default=100_000, help="depthUpdate frames to generate")
    parser.add_argument("--steps-per-frame", type=int, default=8, help="simulated order-flow steps per frame")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block-s", type=float, default=2.0, help="timed seconds per variant per round")
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--profile-frames", type=int, default=5_000)
    parser.add_argument("--core", type=int, default=1, help="CPU to pin this process to (-1: no pinning)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    # Generated before pinning, so the untimed set-up may use whichever core is free.
    started = time.perf_counter()
    stream = generate(args.frames, args.steps_per_frame, args.seed)
    print(
        f"generated {len(stream.frames):,} frames in {time.perf_counter() - started:.1f} s, "
        f"{statistics.fmean(stream.levels):.1f} levels per frame",
        flush=True,
    )
    core = args.core if args.core >= 0 else None
    if core is not None:
        os.sched_setaffinity(0, {core})
    facts = machine_facts(core, argv)
    gc.collect()
    results = run_rounds(build_variants(stream, client), args.rounds, args.block_s, args.warmup_s)
    report, rows, events_per_frame = profile_in_process(stream, args.profile_frames, 15)
    print(report)
    client.flushdb()
    section = render(args, stream, results, facts, rows, events_per_frame)
    publish(section, write=args.write, start=SECTION_START, end=SECTION_END, intro=MD_INTRO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
