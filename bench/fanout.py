"""Benchmark: K WebSocket subscribers of one book at R deltas/s, on the platform, a bare broadcaster and Channels.

Run from the repository root: `.venv/bin/python bench/fanout.py [--quick] [--write]`. In one run it starts
three servers, each one process (pinned to one core when the machine has two):

- platform: daphne serving `hftplatform.asgi:application` (throwaway SQLite, the bench Redis db, no feed
  runner); this process publishes a snapshot and then the deltas into its `RedisBus`, as a feed runner
  would, and the subscribers use `/api/hft/ws/orderbook/BTC-USDT` with a bench customer's key;
- bare: `bench/fanout_bare.py`, the `websockets` library's `broadcast()`, making the same deltas itself;
- channels: daphne serving `bench/fanout_channels.py`, a consumer per subscriber in one group, fed by
  channels-redis `group_send` from this process.

For each K, rounds run the three in rotating order; in each case the subscribers (spread over client
processes, pinned to the other core) connect, a warm-up of deltas goes out, then the measured ones. Clients
record publish-to-receive and sequence gaps; servers publish-to-last-send; server CPU comes from /proc.
Figures are medians across rounds; ratios are medians of each round's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import fanout_profile  # noqa: E402
from bench.fanout_clients import run_clients  # noqa: E402
from bench.fanout_events import CHANGES_PER_DELTA, BenchMarket, delta_json  # noqa: E402
from bench.fanout_servers import (  # noqa: E402
    HOST,
    BareServer,
    ChannelsServer,
    PlatformServer,
    Server,
    ServerSide,
    ServerUnavailable,
    cpu_seconds,
    percentile,
)
from bench.report import UNLIMITED_RATES, bench_command, free_port, publish  # noqa: E402

SECTION_START = "<!-- fanout:start -->"
SECTION_END = "<!-- fanout:end -->"
MD_INTRO = (
    "# Benchmarks\n\nFigures from the scripts in `bench/`, each against a bare baseline measured in the same run.\n"
)
SERVERS = ("platform", "bare", "channels")
TARGET_K = 1000
SERVER_P95_TARGET_MS = 10.0
CLIENT_P95_RATIO_TARGET = 2.0
TIER_SLUG = "bench-fanout"
CUSTOMER_NAME = "Bench fan-out"
SATURATED_SHARE = 0.9
IDLE_DRAIN_S = 2.0  # the stream is drained when no client received a delta for this long


@dataclass
class Case:
    """One server at one K in one round."""

    server: str
    k: int
    round: int
    opened: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    events: int = 0
    measured_events: int = 0
    deliveries: int = 0
    measured_deliveries: int = 0
    client_ms: dict[str, float] = field(default_factory=dict)
    server_side: ServerSide | None = None
    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    window_s: float = 0.0
    drain_s: float = 0.0
    gaps: int = 0
    missing: int = 0
    closes: Counter[str] = field(default_factory=Counter)

    @property
    def per_core(self) -> float:
        return self.deliveries / self.cpu_s if self.cpu_s else 0.0

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.window_s if self.window_s else 0.0

    def is_saturated(self, max_drain_s: float) -> bool:
        """The server could not keep up: a core's worth of CPU, or deltas still arriving when the wait ended."""
        return self.cpu_share >= SATURATED_SHARE or self.drain_s >= max_drain_s - 0.1


@dataclass
class Run:
    args: argparse.Namespace
    cases: list[Case] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    pinning: str = "none"
    facts: dict[str, str] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_s: float = 0.0
    payload_bytes: int = 0
    redis_url: str = ""

    def of(self, server: str, k: int) -> list[Case]:
        return [c for c in self.cases if c.server == server and c.k == k]


# --- One case ---------------------------------------------------------------------------------------


def shares(k: int, processes: int) -> list[int]:
    n = max(1, min(k, processes))
    return [k // n + (1 if i < k % n else 0) for i in range(n)]


async def run_case(
    server: Server, k: int, round_index: int, args: argparse.Namespace, redis_pid: int | None, profile: Path | None
) -> Case:
    case = Case(server.name, k, round_index)
    await server.before_case()
    ctx = mp.get_context("spawn")
    workers = []
    for share in shares(k, args.clients):
        parent, child = ctx.Pipe()
        progress = ctx.RawValue(ctypes.c_longlong, 0)
        proc = ctx.Process(target=run_clients, args=(server.client_plan(share), child, progress), daemon=True)
        proc.start()
        workers.append((proc, parent, progress))
    is_done = False
    try:
        for _, pipe, _ in workers:
            ready = await _recv(pipe, args.connect_timeout)
            case.opened += ready["ready"]
            case.failed += ready["failed"]
            case.errors.update(ready["errors"])
        warmup, measured = round(args.warmup * args.rate), round(args.duration * args.rate)
        sampler = fanout_profile.start(server.pid, args.warmup + args.duration + 10, profile) if profile else None
        client_pids = [proc.pid for proc, _, _ in workers if proc.pid is not None]
        clients0 = sum(_cpu_or_zero(pid) for pid in client_pids)
        cpu0, redis0, t0 = cpu_seconds(server.pid), _cpu_or_zero(redis_pid), time.monotonic()
        published, first = await server.publish(warmup, measured, args.rate)
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes what it sampled on Ctrl-C
            await asyncio.to_thread(sampler.wait, 30)
        drain_start = time.monotonic()
        await _drain([p for _, _, p in workers], case.opened * len(published), args.max_drain)
        case.drain_s = time.monotonic() - drain_start
        case.cpu_s = cpu_seconds(server.pid) - cpu0
        case.redis_cpu_s = _cpu_or_zero(redis_pid) - redis0
        case.client_cpu_s = sum(_cpu_or_zero(pid) for pid in client_pids) - clients0
        case.window_s = time.monotonic() - t0
        window = published[first:]
        case.events, case.measured_events = len(published), len(window)
        latencies = array("q")
        for _, pipe, _ in workers:
            pipe.send({"first_seq": window[0][0], "last_seq": window[-1][0]})
        for _, pipe, _ in workers:
            summary = await _recv(pipe, 120)
            latencies.frombytes(summary["latency_ns"])
            case.deliveries += summary["deliveries"]
            case.measured_deliveries += summary["measured_deliveries"]
            case.gaps += summary["gaps"]
            case.missing += summary["missing"]
            case.closes.update(summary["closes"])
            case.errors.update(summary["errors"])
        ordered = sorted(latencies)
        if ordered:
            case.client_ms = {name: percentile(ordered, q) / 1e6 for name, q in QUANTILES.items()}
        case.server_side = await server.server_side(window)
        is_done = True
    finally:
        for proc, _, _ in workers:
            proc.join(timeout=30 if is_done else 0)
            if proc.is_alive():
                proc.kill()
    return case


QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


async def _recv(pipe: Any, timeout_s: float) -> dict[str, Any]:
    if not await asyncio.to_thread(pipe.poll, timeout_s):
        raise RuntimeError(f"a client process did not answer within {timeout_s:.0f} s")
    message: dict[str, Any] = pipe.recv()
    return message


async def _drain(progress: list[Any], expected: int, max_s: float) -> None:
    """Until every open connection has every delta, or none arrived for IDLE_DRAIN_S, or `max_s` passed."""
    deadline = time.monotonic() + max_s
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(p.value for p in progress)
        if total >= expected:
            return
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change > IDLE_DRAIN_S:
            return
        await asyncio.sleep(0.05)


async def settle(pids: list[int], idle_share: float = 0.05, timeout_s: float = 30.0) -> None:
    """Wait until no server process is still busy with the previous case (each under `idle_share` of a core)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = [cpu_seconds(pid) for pid in pids]
        await asyncio.sleep(0.5)
        if all(cpu_seconds(pid) - b < idle_share * 0.5 for pid, b in zip(pids, before, strict=True)):
            return
    print(f"  servers still busy after {timeout_s:.0f} s; going on", flush=True)


def _cpu_or_zero(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def describe(case: Case) -> str:
    side = case.server_side
    server = f"server p95 {side.p95_ms:.2f} ms" if side and side.p95_ms is not None else "server n/a"
    client = (
        f"client p50 {case.client_ms['p50']:.2f} p95 {case.client_ms['p95']:.2f}" if case.client_ms else "client n/a"
    )
    extra = f" failed {case.failed} {dict(case.errors)}" if case.failed or case.errors else ""
    closes = f" closes {dict(case.closes)}" if case.closes else ""
    if side and side.stages:
        server += " (" + ", ".join(f"{stage} p95 {fmt(ms[1])}" for stage, ms in side.stages.items()) + ")"
    if side and side.note:
        server += f" [{side.note}]"
    return (
        f"  K={case.k:<5} round {case.round + 1} {case.server:<9} {server}; {client} ms; "
        f"{case.per_core:,.0f} deliveries/CPU-s ({case.cpu_share:.0%} of a core); gaps {case.gaps} "
        f"missing {case.missing}; drain {case.drain_s:.1f} s{extra}{closes}"
    )


# --- The run ----------------------------------------------------------------------------------------


def provision_platform(env: dict[str, str], max_connections: int) -> tuple[str, int]:
    """Migrate the throwaway database; a fresh key on a non-public bench tier that admits K connections."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connections

    from apps.tiers.models import Customer, Tier
    from apps.tiers.services.accounts import issue_key

    tier, _ = Tier.objects.update_or_create(
        slug=TIER_SLUG,
        defaults={
            "name": "Bench (fan-out)",
            **UNLIMITED_RATES,
            "max_ws_connections": max_connections,
            "max_subscriptions_per_connection": 10,
            "max_book_depth": None,  # depth=full
            "delta_history_length": 100_000,
            "features": ["snapshots", "json_stream", "delta_history", "binary_stream"],
        },
    )
    customer, _ = Customer.objects.update_or_create(name=CUSTOMER_NAME, defaults={"tier": tier, "status": "active"})
    _, secret = issue_key(customer, label="bench", can_read=True)
    connections.close_all()
    return secret, customer.pk


async def wait_slots_released(client: redis.Redis, customer_id: int, timeout_s: float = 15.0) -> int:
    """The platform frees a connection's slot when it closes; the next case needs them all back."""
    deadline = time.monotonic() + timeout_s
    held = 0
    while time.monotonic() < deadline:
        held = int(client.zcard(f"hft:ws:{customer_id}"))
        if held == 0:
            return 0
        await asyncio.sleep(0.2)
    return held


async def drive(run: Run, servers: dict[str, Server], redis_url: str, customer_id: int | None) -> None:
    args = run.args
    client = redis.Redis.from_url(redis_url)
    redis_pid = int(client.info("server")["process_id"])
    names = [s for s in SERVERS if s in servers]
    if "platform" in servers:
        platform = servers["platform"]
        assert isinstance(platform, PlatformServer)
        try:
            await platform.probe()
        except ServerUnavailable as exc:
            run.unavailable["platform"] = str(exc)
            print(f"platform: NOT MEASURED: {exc}", flush=True)
            names.remove("platform")
    for k in args.ks:
        for round_index in range(args.rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                profile = None
                if args.py_spy and round_index == 0 and k == max(args.ks) and name in args.profile_servers:
                    profile = args.py_spy / f"{name}-k{k}.raw"
                try:
                    case = await run_case(servers[name], k, round_index, args, redis_pid, profile)
                except Exception as exc:
                    print(f"  K={k} round {round_index + 1} {name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
                    run.failures.append(f"{name} at K = {k:,}, round {round_index + 1}: {type(exc).__name__}: {exc}")
                    await servers[name].after_case()
                    continue
                run.cases.append(case)
                print(describe(case), flush=True)
                if profile is not None and profile.exists():
                    print(f"  py-spy of {name} at K={k} ({profile}):", flush=True)
                    print("\n".join(f"  {line}" for line in fanout_profile.summarise(profile)), flush=True)
                await servers[name].after_case()
                if name == "platform" and customer_id is not None:
                    held = await wait_slots_released(client, customer_id)
                    if held:
                        print(f"  platform still holds {held} connection slots", flush=True)
                await asyncio.sleep(args.pause)
                await settle([s.pid for s in servers.values()])
    for server in servers.values():
        await server.close()


def machine_facts() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import platform

    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model or platform.machine(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


@contextlib.contextmanager
def bench_redis(args: argparse.Namespace, work: Path) -> Iterator[str]:
    """A redis-server of this run's own, unless --redis-url names one (its db is flushed).

    Pub/Sub channels are global to a Redis server, whatever the db: on a shared server, anything else
    publishing to the platform's live channel (tests, a development server) would reach the bench's hub.
    """
    if args.redis_url:
        redis.Redis.from_url(args.redis_url).flushdb()
        yield args.redis_url
        return
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed; pass --redis-url (a Redis no one else publishes to)")
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    with (work / "redis.log").open("ab") as log:
        proc = subprocess.Popen([*cmd, "--dir", str(work)], stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://{HOST}:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {work / 'redis.log'}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_all(args: argparse.Namespace) -> Run:
    run = Run(args)
    t0 = time.monotonic()
    run.facts = machine_facts()
    run.payload_bytes = len(delta_json(BenchMarket(args.seed).step(), 1, time.time_ns()))
    work = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    with bench_redis(args, work) as redis_url:
        run.redis_url = redis_url
        run.facts["redis"] = str(redis.Redis.from_url(redis_url).info("server")["redis_version"])
        run_servers(run, work, redis_url)
    if not args.keep_logs:
        shutil.rmtree(work, ignore_errors=True)
    run.duration_s = time.monotonic() - t0
    return run


def run_servers(run: Run, work: Path, redis_url: str) -> None:
    args = run.args
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "hftplatform.settings",
            "REDIS_URL": redis_url,
            "HFT_VAR_DIR": str(work / "var"),
            # A feed the web process never runs (no feed runner starts under daphne), pointing nowhere.
            "HFT_FEEDS": orjson.dumps(
                [
                    {
                        "venue": "sim",
                        "instruments": ["BTC-USDT"],
                        "ws_url": "ws://127.0.0.1:9",
                        "rest_url": "http://127.0.0.1:9",
                    }
                ]
            ).decode(),
            "HFT_USAGE_BACKGROUND": "1",
            "DJANGO_DEBUG": "0",
            "HFT_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
    )
    server_cpus: set[int] | None = None
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) >= 2 and shutil.which("taskset"):
        server_cpus = {cpus[-1]}
        os.sched_setaffinity(0, set(cpus[:-1]))  # this process and the client processes it spawns
        run.pinning = (
            f"each server process on CPU {cpus[-1]}; publisher and client processes on CPU "
            f"{','.join(map(str, cpus[:-1]))} (taskset / sched_setaffinity); Redis unpinned"
        )
    servers: dict[str, Server] = {}
    customer_id: int | None = None
    try:
        if "platform" in args.servers:
            key, customer_id = provision_platform(env, max(args.ks) + 16)
            servers["platform"] = PlatformServer(env, server_cpus, work, args.seed, key, args.depth, args.platform_app)
        if "bare" in args.servers:
            servers["bare"] = BareServer(env, server_cpus, work, args.seed)
        if "channels" in args.servers:
            servers["channels"] = ChannelsServer(env, server_cpus, work, args.seed)
        for server in servers.values():
            server.start()
            print(f"{server.name}: pid {server.pid} on 127.0.0.1:{server.port} (log {server.log_path})", flush=True)
        asyncio.run(drive(run, servers, redis_url, customer_id))
    finally:
        for server in servers.values():
            server.stop()


# --- Report -----------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def metric(case: Case, name: str) -> float | None:
    side = case.server_side
    if name.startswith("server_"):
        return getattr(side, f"{name[7:]}_ms") if side else None
    if name.startswith("client_"):
        return case.client_ms.get(name[7:])
    if name == "per_core":
        return case.per_core or None
    if name == "cpu_share":
        return case.cpu_share
    if name == "clients_cpu_share":
        return case.client_cpu_s / case.window_s if case.window_s else None
    raise KeyError(name)


def median_metric(cases: list[Case], name: str) -> float | None:
    return _median([v for c in cases if (v := metric(c, name)) is not None])


def median_ratio(run: Run, k: int, name: str, ours: str, theirs: str) -> float | None:
    """Median over rounds of ours / theirs, both measured in the same round."""
    ratios = []
    for mine in run.of(ours, k):
        other = next((c for c in run.of(theirs, k) if c.round == mine.round), None)
        a, b = metric(mine, name), metric(other, name) if other else None
        if a is not None and b:
            ratios.append(a / b)
    return _median(ratios)


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else f"{value:{spec}}"


ROWS = [
    ("server publish → last send p50 (ms)", "server_p50", ".2f"),
    ("server publish → last send p95 (ms)", "server_p95", ".2f"),
    ("server publish → last send p99 (ms)", "server_p99", ".2f"),
    ("client publish → receive p50 (ms)", "client_p50", ".2f"),
    ("client publish → receive p95 (ms)", "client_p95", ".2f"),
    ("client publish → receive p99 (ms)", "client_p99", ".2f"),
    ("deliveries per server CPU-second", "per_core", ",.0f"),
    ("server CPU, share of one core", "cpu_share", ".0%"),
    ("client processes' CPU, share of one core", "clients_cpu_share", ".0%"),
]


def k_table(run: Run, k: int) -> list[str]:
    names = [s for s in SERVERS if s in run.args.servers]
    lines = [
        "| | " + " | ".join(names) + " | platform / bare | platform / channels |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    for title, name, spec in ROWS:
        cells = [fmt(median_metric(run.of(s, k), name), spec) for s in names]
        ratios = [fmt(median_ratio(run, k, name, "platform", other), ".3g") for other in ("bare", "channels")]
        lines.append(f"| {title} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    for title, attr in (("gaps (all rounds)", "gaps"), ("deltas missing at the end (all rounds)", "missing")):
        cells = [str(sum(getattr(c, attr) for c in run.of(s, k))) if run.of(s, k) else "n/a" for s in names]
        lines.append(f"| {title} | " + " | ".join(cells) + " | | |")
    cells = []
    for s in names:
        cases = run.of(s, k)
        failed = sum(c.failed for c in cases)
        closes = sum((c.closes for c in cases), Counter())
        cells.append("n/a" if not cases else f"{failed}" + (f"; closed {dict(closes)}" if closes else ""))
    lines.append("| connections refused or closed early | " + " | ".join(cells) + " | | |")
    cells = [f"{sum(c.is_saturated(run.args.max_drain) for c in run.of(s, k))} of {len(run.of(s, k))}" for s in names]
    title = "rounds saturated (≥ 90% of a core, or still delivering at the end)"
    lines.append(f"| {title} | " + " | ".join(cells) + " | | |")
    stages = platform_stages(run.of("platform", k))
    if stages:
        lines += ["", f"Platform stages at K = {k:,} (medians across rounds, p50 / p95 / p99 ms): {stages}."]
    return lines


STAGE_TITLES = {
    "publish_to_edge": "publish → hub (Redis Pub/Sub to the web process's hub)",
    "edge_to_send": "hub → last write (the stream's fan-out)",
    "publish_to_send": "publish → last write",
}


def platform_stages(cases: list[Case]) -> str:
    parts = []
    for stage, title in STAGE_TITLES.items():
        values = [c.server_side.stages[stage] for c in cases if c.server_side and stage in c.server_side.stages]
        if values:
            cols = [_median([v[i] for v in values if v[i] is not None]) for i in range(3)]
            parts.append(f"{title} {' / '.join(fmt(v) for v in cols)}")
    return "; ".join(parts)


def verdict(ok: bool | None) -> str:
    return "**not measured**" if ok is None else ("**met**" if ok else "**missed**")


def render(run: Run, command: str) -> str:
    args = run.args
    f = run.facts
    target_k = TARGET_K if TARGET_K in args.ks else max(args.ks)
    server_p95 = median_metric(run.of("platform", target_k), "server_p95")
    client_ratio = median_ratio(run, target_k, "client_p95", "platform", "bare")
    redis_note = f"`{args.redis_url}`" if args.redis_url else "a private redis-server started for the run"
    lines = [
        SECTION_START,
        "## WebSocket fan-out (issue 4)",
        "",
        f"K subscribers of one book (`consolidated:BTC-USDT`) at {args.rate:g} deltas/s, on three servers in one "
        "run: the platform (daphne, `hftplatform.asgi`, subscribers on `/api/hft/ws/orderbook/BTC-USDT?format=json"
        f"&depth={args.depth}` with a bench customer's key, deltas published into its `RedisBus` as a feed runner "
        "would), a bare `websockets` `broadcast()` server making the same deltas itself (no Redis hop: the floor "
        "for Python on this machine), and a Channels consumer per subscriber in one group fed by channels-redis "
        "`group_send`. Generated by the command below; do not edit between the markers.",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Date: {run.started:%Y-%m-%d %H:%M} UTC; the run took {run.duration_s:.0f} s",
        f"- Machine: nproc {f['nproc']}, {f['cpu']}, Linux {f['kernel']}; Python {f['python']}; Redis {f['redis']} "
        f"({redis_note}); load average at the start {f['load']}",
        f"- Pinning: {run.pinning}",
        f"- Method: per case, the subscribers connect (spread over {args.clients} client processes), then at least "
        f"{args.warmup:g} s of warm-up deltas and {args.duration:g} s of measured ones go out ({run.payload_bytes} "
        f"bytes of JSON, {CHANGES_PER_DELTA} changed levels per delta); the case ends when every subscriber has "
        f"every delta or none arrived for {IDLE_DRAIN_S:g} s (at most {args.max_drain:g} s). {args.rounds} round(s) "
        "per K, the servers in rotating order, each server idle before the next case starts. **This machine has 2 "
        "cores and is shared: every figure is the median across rounds, and a ratio is the median of each round's "
        "ratio.** Compare ratios between runs, not absolute figures.",
        "- Server side, publish → last send: per measured delta, from its publish timestamp to the return of the "
        "last write of it to a subscriber's connection. Bare: around `broadcast()`, which writes to each socket. "
        "Channels: each consumer's `send()` return, the latest per delta. Platform: the stream's own stage "
        "`publish_to_send` (what `GET /api/hft/latency/BTC-USDT` reports), read from the latency store for the "
        "10 s slots of the measured deltas only (their publishing starts on a slot boundary); its writes are "
        "`send()` calls on each connection's socket (Twisted only buffers what the kernel does not take at once).",
        "- Client side, publish → receive: the time a subscriber's bytes were read from its socket minus the "
        "delta's `timestamp`, over every measured delivery. The client processes share one core and read a burst "
        "of K deliveries one after another, so this includes their own queueing (their CPU is shown). Gaps: a "
        "delta whose `sequence` is not the connection's last + 1.",
        "- Deliveries per server CPU-second: deltas received by all subscribers divided by the server process's "
        "user + system CPU seconds (/proc) from the first publish to the end of the case, warm-up included. Redis "
        "is not counted (it does the fan-out work for Channels and the bus work for the platform; shown below).",
        "",
    ]
    for name, reason in run.unavailable.items():
        lines += [f"**{name}: not measured.** {reason}", ""]
    for failure in run.failures:
        lines += [f"**Case failed, left out:** {failure}", ""]
    for k in args.ks:
        lines += [f"### K = {k:,}", "", *k_table(run, k), ""]
    redis_rows = [
        f"{s} {fmt(_median([c.redis_cpu_s / c.window_s for c in run.of(s, target_k) if c.window_s]), '.0%')}"
        for s in SERVERS
        if run.of(s, target_k)
    ]
    lines += [
        f"Redis server CPU during the K = {target_k:,} cases, share of one core (the whole Redis server): "
        + ", ".join(redis_rows)
        + ".",
        "",
        "### Targets",
        "",
        f"- K = {target_k:,}, R = {args.rate:g}: platform server-side p95 ≤ {SERVER_P95_TARGET_MS:g} ms: "
        f"{verdict(None if server_p95 is None else server_p95 <= SERVER_P95_TARGET_MS)} ({fmt(server_p95)} ms)",
        f"- K = {target_k:,}, R = {args.rate:g}: platform client-side p95 ≤ {CLIENT_P95_RATIO_TARGET:g}x bare: "
        f"{verdict(None if client_ratio is None else client_ratio <= CLIENT_P95_RATIO_TARGET)} "
        f"({fmt(client_ratio)}x)",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section in BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: one short round per K")
    parser.add_argument("--ks", default="1,100,1000", help="subscriber counts, comma separated")
    parser.add_argument("--rate", type=float, default=10.0, help="deltas per second")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per case")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of deltas before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per K (servers in rotating order)")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--servers", default=",".join(SERVERS), help="which of platform,bare,channels")
    parser.add_argument("--depth", default="full", help="the platform stream's depth parameter")
    parser.add_argument(
        "--platform-app", default="hftplatform.asgi:application", help="ASGI app daphne serves as the platform"
    )
    parser.add_argument("--max-drain", type=float, default=20.0, help="seconds to wait for late deltas")
    parser.add_argument("--connect-timeout", type=float, default=180.0, help="seconds for K connections to open")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between cases")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave servers and clients unpinned")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and the temp database")
    parser.add_argument("--redis-url", default="", help="use this Redis (its db is flushed) instead of a private one")
    parser.add_argument("--py-spy", type=Path, help="sample the servers with py-spy at the largest K into this dir")
    parser.add_argument("--profile-servers", default="platform", help="which servers --py-spy samples")
    args = parser.parse_args(argv)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.duration, args.warmup, args.rounds, args.max_drain = 3.0, 1.0, 1, 10.0
    args.ks = [int(k) for k in args.ks.split(",")]
    args.servers = [s for s in args.servers.split(",") if s]
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = run_all(args)
    command = bench_command("fanout.py", argv)
    section = render(run, command)
    publish(section, write=args.write, start=SECTION_START, end=SECTION_END, intro=MD_INTRO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
