"""Benchmark: one trivial endpoint bare and behind API-key auth + rate limiting, served by daphne in the same run.

Run from the repository root: `.venv/bin/python bench/auth_ratelimit.py [--write]`. It creates (if missing)
and migrates a dedicated PostgreSQL database, provisions a non-public tier with limits too large to ever
refuse, starts daphne with `bench.settings_auth`, and drives `/bench/bare`, `/bench/trip` (the rate
limiter's Redis round trip alone: the floor) and `/bench/auth` from this process over keep-alive
connections, rotating their order in rounds. Figures are medians across rounds; ratios and differences are
taken within a round, so the variants share the machine's noise. Redis round trips come from
`INFO commandstats` around each variant's rounds, cross-checked with MONITOR on the bench db.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import (  # noqa: E402
    bench_command,
    bench_key,
    ensure_database,
    free_port,
    is_listening,
    publish,
    running_process,
)

VENV_BIN = Path(sys.executable).parent
SETTINGS_MODULE = "bench.settings_auth"
# db 13: CI tests use 15, and bench/ingest.py flushes 14 (which would drop the auth generation mid-run).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/hftplatform_bench"
HOST = "127.0.0.1"
# bare: no authentication. trip: bare plus the rate-limit script's one Redis round trip, nothing else
# (bench/urls_auth.py), the floor of one round trip per request. auth: the project's defaults.
VARIANTS = ("bare", "trip", "auth")
TIER_SLUG = "bench-unlimited"
CUSTOMER_NAME = "Bench unlimited"
KEY_LABEL = "bench"
SECTION_START = "<!-- bench:auth_ratelimit:start -->"
SECTION_END = "<!-- bench:auth_ratelimit:end -->"
P95_TARGET_MS = 0.5
ROUND_TRIP_TARGET = 1.0
MD_INTRO = """# Benchmarks

Performance is measured by the scripts in `bench/`, not by timed tests. Each one compares our path with a
bare baseline served by the same process in the same run, alternating the two in rounds; the figures are
medians across rounds, and the verdicts use ratios and differences taken within a round. These machines are
noisy (2 cores, shared), so compare ratios between runs, not absolute requests/s.
"""


@dataclass
class Block:
    """One variant's requests in one round: wall time, client-side latencies and HTTP statuses."""

    elapsed_s: float
    latencies_ns: list[int]
    statuses: Counter[int]

    @property
    def rps(self) -> float:
        return len(self.latencies_ns) / self.elapsed_s

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
        return ordered[rank] / 1e6


@dataclass
class Phase:
    """Several rounds at one concurrency, the variants in turn (which one goes first rotates every round)."""

    concurrency: int
    requests: int
    rate_per_s: float | None = None  # None: closed loop, as fast as answered
    rounds: list[dict[str, Block]] = field(default_factory=list)

    def median(self, variant: str, metric: str) -> float:
        return statistics.median(_metric(r[variant], metric) for r in self.rounds)

    def median_ratio(self, metric: str, variant: str = "auth") -> float:
        return statistics.median(_metric(r[variant], metric) / _metric(r["bare"], metric) for r in self.rounds)

    def added(self, metric: str, variant: str = "auth") -> list[float]:
        return sorted(_metric(r[variant], metric) - _metric(r["bare"], metric) for r in self.rounds)

    def median_added(self, metric: str, variant: str = "auth") -> float:
        return statistics.median(self.added(metric, variant))

    def statuses(self, variant: str) -> Counter[int]:
        total: Counter[int] = Counter()
        for r in self.rounds:
            total.update(r[variant].statuses)
        return total


def _metric(block: Block, metric: str) -> float:
    if metric == "rps":
        return block.rps
    return block.percentile_ms({"p50": 0.50, "p95": 0.95, "p99": 0.99}[metric])


@dataclass
class RedisAccount:
    """Redis commands seen while one variant ran (INFO commandstats deltas, `info` itself left out)."""

    requests: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    usec: Counter[str] = field(default_factory=Counter)

    def usec_per_call(self, command: str) -> float:
        return self.usec[command] / self.calls[command] if self.calls[command] else 0.0

    def per_request(self, command: str | None = None) -> float:
        total = self.calls[command] if command else sum(self.calls.values())
        return total / self.requests if self.requests else 0.0


# --- Setup: database, tier and key, server --------------------------------------------------------


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300
    )


def provision_key() -> str:
    """A fresh key on a non-public tier whose limits this benchmark cannot reach (older bench keys deleted)."""
    from django.db import connections

    tier_fields = {"name": "Bench (unlimited)", "max_ws_connections": 1, "max_subscriptions_per_connection": 1}
    _, secret = bench_key(TIER_SLUG, CUSTOMER_NAME, tier_fields, label=KEY_LABEL)
    connections.close_all()
    return secret


@contextlib.contextmanager
def running_server(env: dict[str, str], port: int, cpus: set[int] | None, log: IO[bytes]) -> Iterator[int]:
    # taskset pins before exec, so every thread daphne starts inherits the affinity.
    # -v 0: no access log, which would otherwise cost both variants a line of stdout per request.
    cmd = [str(VENV_BIN / "daphne"), "-v", "0", "-b", HOST, "-p", str(port), "hftplatform.asgi:application"]
    if cpus is not None:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
    ready = functools.partial(is_listening, port, HOST)
    with running_process(cmd, cwd=ROOT, env=env, log=log, is_ready=ready, timeout_s=30) as proc:
        yield proc.pid


# --- Load generator: raw HTTP/1.1 over asyncio streams, keep-alive -------------------------------


def build_request(path: str, port: int, key: str) -> bytes:
    # Both variants send the same headers, so only the path (and what it runs) differs.
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\nAccept: application/json\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    if match is None:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    await reader.readexactly(int(match.group(1)))
    return status


async def run_block(
    port: int, request: bytes, count: int, concurrency: int, timeout_s: float, *, rate_per_s: float | None = None
) -> Block:
    """`count` requests over `concurrency` keep-alive connections, each sending its next once answered.

    Closed loop by default (as fast as answered). With `rate_per_s`, request i is due at i / rate and its
    latency runs from when it was due, so time spent waiting for a free connection counts (no coordinated
    omission); asyncio's timer adds up to 1 ms of send slack, alike for both variants.
    """
    conns = [await asyncio.open_connection(HOST, port) for _ in range(concurrency)]
    issued = [0]
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + timeout_s
    interval_ns = int(1e9 / rate_per_s) if rate_per_s else 0
    loop = asyncio.get_running_loop()

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while issued[0] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"block of {count} requests exceeded {timeout_s} s")
            index = issued[0]
            issued[0] += 1
            start = time.perf_counter_ns()
            if interval_ns:
                due = t0_ns + index * interval_ns
                if due > start:
                    await asyncio.sleep((due - start) / 1e9)
                start = due
            writer.write(request)
            status = await read_response(reader)
            latencies.append(time.perf_counter_ns() - start)
            statuses[status] += 1

    try:
        t0_ns = time.perf_counter_ns()
        begun = loop.time()
        await asyncio.wait_for(asyncio.gather(*(worker(r, w) for r, w in conns)), timeout_s + 5)
        elapsed = loop.time() - begun
    finally:
        for _, writer in conns:
            writer.close()
    return Block(elapsed, latencies, statuses)


# --- Redis accounting ---------------------------------------------------------------------------


def command_stats(client: redis.Redis) -> tuple[Counter[str], Counter[str]]:
    """Calls and server microseconds per command so far (INFO commandstats, whole server, `info` left out)."""
    stats = {k.removeprefix("cmdstat_"): v for k, v in client.info("commandstats").items() if k != "cmdstat_info"}
    return Counter({k: int(v["calls"]) for k, v in stats.items()}), Counter(
        {k: int(v["usec"]) for k, v in stats.items()}
    )


# The server's own commands that are not the request path's: the background flushes of the usage pusher and
# of the request-duration telemetry (each names its keys), and a connection's handshake or health check.
BACKGROUND_MARKS = ("hft:usage:", "hft:http:")
UPKEEP_COMMANDS = frozenset({"hello", "select", "client", "ping", "auth"})


@dataclass
class MonitorTally:
    """The server's commands seen by MONITOR: request path, usage pusher, connection upkeep, and run in Lua."""

    request_path: Counter[str] = field(default_factory=Counter)
    pusher: Counter[str] = field(default_factory=Counter)
    upkeep: Counter[str] = field(default_factory=Counter)
    lua: Counter[str] = field(default_factory=Counter)
    foreign: int = 0  # other clients' commands on the same db, left out
    requests: int = 0

    def per_request(self, counts: Counter[str]) -> float:
        return sum(counts.values()) / self.requests


def server_redis_ports(pid: int, redis_port: int) -> set[int]:
    """Local ports of a process's TCP connections to Redis (from /proc), so MONITOR lines can be attributed."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                local, remote, inode = line.split()[1], line.split()[2], line.split()[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == redis_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def tally_entries(entries: list[dict[str, Any]], ports: set[int], requests: int) -> MonitorTally:
    tally = MonitorTally(requests=requests)
    is_ours = False  # whose script the following "lua" lines belong to: Redis runs one command at a time
    for entry in entries:
        name = entry["command"].split(" ", 1)[0].lower()
        if entry["client_type"] == "lua":
            if is_ours:
                tally.lua[name] += 1
            continue
        is_ours = entry["client_type"] == "tcp" and int(entry["client_port"]) in ports
        if not is_ours:
            tally.foreign += 1
        elif any(mark in entry["command"] for mark in BACKGROUND_MARKS):
            tally.pusher[name] += 1
        elif name in UPKEEP_COMMANDS:
            tally.upkeep[name] += 1
        else:
            tally.request_path[name] += 1
    return tally


def monitor_db(
    redis_url: str, entries: list[dict[str, Any]], stop_token: str, ready: threading.Event, limit_s: float
) -> None:
    """Collect MONITOR lines for the bench db until the stop token goes by (or the time limit)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    db = int(urlsplit(redis_url).path.lstrip("/") or 0)
    deadline = time.monotonic() + limit_s
    with client.monitor() as monitor:
        ready.set()
        while time.monotonic() < deadline:
            try:
                entry = monitor.next_command()
            except redis.TimeoutError:
                continue
            if entry["db"] != db:
                continue
            if stop_token in entry["command"]:
                return
            entries.append(entry)


# --- The run -----------------------------------------------------------------------------------


@dataclass
class Phases:
    load: Phase
    paced: Phase
    serial: Phase
    redis: dict[str, RedisAccount]
    monitor: MonitorTally


@dataclass
class Results:
    phases: Phases
    pinned: str
    started: datetime
    duration_s: float
    facts: dict[str, str]


async def run_phase(
    port: int,
    requests: dict[str, bytes],
    phase: Phase,
    *,
    rounds: int,
    timeout_s: float,
    redis_client: redis.Redis | None = None,
    redis_accounts: dict[str, RedisAccount] | None = None,
) -> None:
    for index in range(rounds):
        shift = index % len(VARIANTS)
        order = VARIANTS[shift:] + VARIANTS[:shift]
        result: dict[str, Block] = {}
        for variant in order:
            before = command_stats(redis_client) if redis_client else None
            block = await run_block(
                port, requests[variant], phase.requests, phase.concurrency, timeout_s, rate_per_s=phase.rate_per_s
            )
            if redis_client and redis_accounts is not None and before is not None:
                account = redis_accounts[variant]
                account.requests += phase.requests
                calls, usec = command_stats(redis_client)
                account.calls.update(calls - before[0])
                account.usec.update(usec - before[1])
            result[variant] = block
        phase.rounds.append(result)
        print(
            f"  c={phase.concurrency}{f' at {phase.rate_per_s:.0f}/s' if phase.rate_per_s else ''} "
            f"round {index + 1}/{rounds}: "
            + "  ".join(
                f"{v} {result[v].rps:,.0f} req/s p50 {result[v].percentile_ms(0.5):.2f} "
                f"p95 {result[v].percentile_ms(0.95):.2f} ms"
                for v in VARIANTS
            ),
            flush=True,
        )


async def monitored_pass(
    port: int, request: bytes, count: int, *, redis_url: str, server_pid: int, timeout_s: float
) -> MonitorTally:
    """Untimed auth requests under MONITOR; only the server's own connections are counted."""
    entries: list[dict[str, Any]] = []
    token = f"bench-monitor-end-{os.getpid()}-{time.time_ns()}"
    ready = threading.Event()
    thread = threading.Thread(target=monitor_db, args=(redis_url, entries, token, ready, timeout_s), daemon=True)
    redis_port = urlsplit(redis_url).port or 6379
    ports = server_redis_ports(server_pid, redis_port)
    thread.start()
    if not ready.wait(5):
        raise RuntimeError("MONITOR did not start")
    await asyncio.sleep(0.2)
    block = await run_block(port, request, count, 1, timeout_s)
    if block.statuses[200] != count:
        raise RuntimeError(f"monitored pass answered {dict(block.statuses)}")
    redis.Redis.from_url(redis_url).echo(token)
    thread.join(timeout_s)
    ports |= server_redis_ports(server_pid, redis_port)
    if not ports:
        raise RuntimeError("found no Redis connection of the server in /proc")
    return tally_entries(entries, ports, count)


async def drive(args: argparse.Namespace, port: int, key: str, server_pid: int) -> Phases:
    requests = {v: build_request(f"/bench/{v}", port, key) for v in VARIANTS}
    for variant in VARIANTS:
        block = await run_block(port, requests[variant], args.warmup, args.concurrency, args.timeout)
        if block.statuses[200] != args.warmup:
            raise RuntimeError(f"warm-up of {variant} answered {dict(block.statuses)}")
    print(f"warmed up: {args.warmup} requests per variant", flush=True)
    stats_client = redis.Redis.from_url(args.redis_url, socket_timeout=2)
    accounts = {v: RedisAccount() for v in VARIANTS}
    load = Phase(args.concurrency, args.requests)
    await run_phase(
        port,
        requests,
        load,
        rounds=args.rounds,
        timeout_s=args.timeout,
        redis_client=stats_client,
        redis_accounts=accounts,
    )
    # Both variants are offered the same rate: a share of what the bare endpoint sustained above.
    paced = Phase(args.concurrency, args.paced_requests, rate_per_s=args.paced_share * load.median("bare", "rps"))
    await run_phase(port, requests, paced, rounds=args.rounds, timeout_s=args.timeout)
    serial = Phase(1, args.serial_requests)
    await run_phase(port, requests, serial, rounds=args.rounds, timeout_s=args.timeout)
    tally = await monitored_pass(
        port,
        requests["auth"],
        args.monitor_requests,
        redis_url=args.redis_url,
        server_pid=server_pid,
        timeout_s=args.timeout,
    )
    return Phases(load, paced, serial, accounts, tally)


def machine_facts(redis_url: str) -> dict[str, str]:
    """Read before pinning: nproc honours this process's affinity."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": nproc or str(os.cpu_count()),
        "cpu": model or platform.machine(),
        "python": platform.python_version(),
        "redis": str(redis.Redis.from_url(redis_url).info("server")["redis_version"]),
        "kernel": platform.release(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def run(args: argparse.Namespace) -> Results:
    started = datetime.now(UTC)
    t0 = time.monotonic()
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "REDIS_URL": args.redis_url,
            "DATABASE_URL": args.database_url,
            "HFT_USAGE_BACKGROUND": "1",
            "DJANGO_DEBUG": "0",
            "HFT_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    ensure_database(args.database_url)
    migrate(env)
    os.environ.update(env)
    key = provision_key()
    facts = machine_facts(args.redis_url)
    ncpu = len(os.sched_getaffinity(0))
    server_cpus: set[int] | None = None
    pinned = "none"
    if args.pin and ncpu >= 2 and shutil.which("taskset"):
        cpus = sorted(os.sched_getaffinity(0))
        server_cpus, client_cpus = {cpus[-1]}, set(cpus[:-1])
        os.sched_setaffinity(0, client_cpus)
        pinned = (
            f"daphne on CPU {cpus[-1]}, load generator on CPU {','.join(map(str, sorted(client_cpus)))} "
            "(taskset / sched_setaffinity); Redis and PostgreSQL unpinned"
        )
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="bench-daphne-", suffix=".log", delete=False) as log:
        print(f"daphne on {HOST}:{port} (log {log.name}); pinning: {pinned}", flush=True)
        with running_server(env, port, server_cpus, log) as pid:
            phases = asyncio.run(drive(args, port, key, pid))
    Path(log.name).unlink()  # kept only when the run fails, to show why
    return Results(phases, pinned, started, time.monotonic() - t0, facts)


# --- Report ------------------------------------------------------------------------------------


def phase_table(phase: Phase) -> list[str]:
    def spread(metric: str, fmt: str) -> str:
        added = phase.added(metric)
        return f"{added[0]:{fmt}} … {added[-1]:{fmt}}"

    rows = [
        "| | bare | auth + rate limit | auth / bare | added by auth | added, range over rounds "
        "| round trip only | added by the round trip alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| requests/s | {phase.median('bare', 'rps'):,.0f} | {phase.median('auth', 'rps'):,.0f} "
        f"| {phase.median_ratio('rps'):.3f} | {round(phase.median_added('rps')):+,} | {spread('rps', '+,.0f')} "
        f"| {phase.median('trip', 'rps'):,.0f} | {round(phase.median_added('rps', 'trip')):+,} |",
    ]
    for metric in ("p50", "p95"):
        rows.append(
            f"| {metric} latency (ms) | {phase.median('bare', metric):.3f} | {phase.median('auth', metric):.3f} "
            f"| {phase.median_ratio(metric):.3f} | {phase.median_added(metric):+.3f} | {spread(metric, '+.3f')} "
            f"| {phase.median('trip', metric):.3f} | {phase.median_added(metric, 'trip'):+.3f} |"
        )
    return rows


def _per(counts: Counter[str], requests: int) -> str:
    return ", ".join(f"{name} {n / requests:.3f}" for name, n in counts.most_common())


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def p95_verdict(phase: Phase, variant: str = "auth") -> str:
    added = phase.median_added("p95", variant)
    over = f", {added - P95_TARGET_MS:.3f} ms over" if added > P95_TARGET_MS else ""
    return f"{verdict(added <= P95_TARGET_MS)} ({added:+.3f} ms{over})"


def extra_us(phase: Phase, variant: str) -> float:
    """Server time a variant adds per request over bare, from the saturated throughputs (1/rps - 1/bare rps)."""
    return statistics.median((1 / r[variant].rps - 1 / r["bare"].rps) * 1e6 for r in phase.rounds)


def render(args: argparse.Namespace, res: Results, command: str) -> str:
    ph = res.phases
    load, paced, serial = ph.load, ph.paced, ph.serial
    auth, bare, trip = ph.redis["auth"], ph.redis["bare"], ph.redis["trip"]
    evalsha = auth.per_request("evalsha")
    mon = ph.monitor
    trips = mon.per_request(mon.request_path)
    db = urlsplit(args.redis_url).path.lstrip("/")
    phases = (load, paced, serial)
    refusals = sum(p.statuses(v)[429] for p in phases for v in VARIANTS)
    errors = sum(n for p in phases for v in VARIANTS for code, n in p.statuses(v).items() if code not in {200, 429})
    push_s = os.environ.get("HFT_USAGE_PUSH_S", "2")
    flush_s = os.environ.get("HFT_LATENCY_PUSH_S", "2")
    rate = paced.rate_per_s or 0.0
    f = res.facts
    lines = [
        SECTION_START,
        "## Authentication + rate limiting (issue 2)",
        "",
        'The same trivial DRF endpoint (`{"ok": true}`) served by one daphne process, bare '
        "(`authentication_classes = []`, `AllowAny`) and with the project defaults (API key → cached principal, "
        "one Redis Lua call for bucket + windows, key permission check, rate-limit headers, usage metering). "
        "A third variant, *round trip only*, is bare plus the rate-limit script's one Redis round trip, sent as "
        "the request enters the middleware chain and read as it leaves (as the real admission does), with no "
        "key check, header or metering (`bench/urls_auth.py`): what any design that spends from a shared "
        "Redis bucket on every request pays at least. "
        "Generated by the command below; do not edit between the markers.",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Date: {res.started:%Y-%m-%d %H:%M} UTC; the run took {res.duration_s:.0f} s",
        f"- Machine: nproc {f['nproc']}, {f['cpu']}, Linux {f['kernel']}; Python {f['python']}; Redis {f['redis']}",
        f"- Load average when the run started (1/5/15 min): {f['load']}; other work on the machine shows up as "
        "spread between rounds",
        f"- Pinning: {res.pinned}",
        f"- Server: one daphne process (`-v 0`, no access log), `DEBUG` off, Redis db {db}, PostgreSQL not touched "
        "once warm, usage pusher thread on; the key's tier is a non-public one whose limits the run cannot reach",
        f"- Method: {args.warmup:,} warm-up requests per variant, then {args.rounds} rounds per phase, the three "
        "variants in turn (which goes first rotates every round). Figures are medians across rounds; the ratio and "
        "added columns are medians of each round's ratio and difference, and the range is their spread over the "
        "rounds. Latency is measured by the client (this process), from when a request was due.",
        "",
        f"### Saturated: {load.concurrency} connections, closed loop, {load.requests:,} requests per variant per round",
        "",
        *phase_table(load),
        "",
        "At saturation latency is queueing: by Little's law each connection waits for the others, so the p95 "
        f"difference here is about {load.concurrency}x the extra server time per request.",
        "",
        f"### Paced: {paced.concurrency} connections, {rate:,.0f} req/s offered to both "
        f"({args.paced_share:.0%} of bare's saturated rate), {paced.requests:,} requests per variant per round",
        "",
        *phase_table(paced),
        "",
        f"### One connection: no queueing, {serial.requests:,} requests per variant per round",
        "",
        *phase_table(serial),
        "",
        "### Redis",
        "",
        "| | per auth request | per bare request | per round-trip-only request |",
        "|---|---:|---:|---:|",
        f"| EVALSHA calls (INFO commandstats, saturated rounds) | {evalsha:.4f} | {bare.per_request('evalsha'):.4f} "
        f"| {trip.per_request('evalsha'):.4f} |",
        f"| Redis time per EVALSHA, whole script (µs, commandstats) | {auth.usec_per_call('evalsha'):.1f} | "
        f"| {trip.usec_per_call('evalsha'):.1f} |",
        f"| all commands, including those run inside Lua (INFO commandstats, whole server) "
        f"| {auth.per_request():.4f} | {bare.per_request():.4f} | {trip.per_request():.4f} |",
        f"| server's round trips on the request path (MONITOR, {mon.requests} untimed requests) | {trips:.4f} | | |",
        f"| usage pusher, telemetry flush and connection upkeep (MONITOR, off the request path) "
        f"| {mon.per_request(mon.pusher) + mon.per_request(mon.upkeep):.4f} | | |",
        "",
        f"Request-path commands: {_per(mon.request_path, mon.requests)}. Run inside the script, per request: "
        f"{_per(mon.lua, mon.requests)}. Off the path: {_per(mon.pusher + mon.upkeep, mon.requests) or 'none'} "
        f"(the usage pusher runs every {push_s} s, the telemetry flush every {flush_s} s). "
        "MONITOR lines are attributed to the server by its own "
        f"connections' ports (from /proc); {mon.foreign} other clients' commands on db {db} were left out. "
        "Commandstats covers the whole Redis server, other clients included.",
        "",
        f"Refusals (429): {refusals}; other non-200 answers: {errors}.",
        "",
        "### Targets",
        "",
        f"- ≤ {P95_TARGET_MS} ms p95 added: saturated {p95_verdict(load)}; paced {p95_verdict(paced)}; "
        f"one connection {p95_verdict(serial)}.",
        f"- The round trip alone, against the same {P95_TARGET_MS} ms: saturated {p95_verdict(load, 'trip')}; "
        f"paced {p95_verdict(paced, 'trip')}; one connection {p95_verdict(serial, 'trip')}. Extra server time "
        "per request from the saturated throughputs: round trip alone "
        f"{extra_us(load, 'trip'):.0f} µs, auth {extra_us(load, 'auth'):.0f} µs; at {load.concurrency} requests "
        f"in flight {P95_TARGET_MS} ms allows about {P95_TARGET_MS * 1000 / load.concurrency:.0f} µs.",
        f"- One Redis round trip per request: {verdict(round(trips, 2) <= ROUND_TRIP_TARGET)} "
        f"({trips:.3f} request-path commands per request; EVALSHA {evalsha:.3f} per request).",
        f"- Throughput at saturation: auth serves {load.median_ratio('rps'):.1%} of bare's requests/s.",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section in BENCHMARKS.md")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in the loaded phase")
    parser.add_argument("--requests", type=int, default=600, help="requests per variant per saturated round")
    parser.add_argument("--paced-requests", type=int, default=600, help="requests per variant per paced round")
    parser.add_argument("--paced-share", type=float, default=0.5, help="paced rate as a share of bare's saturated rate")
    parser.add_argument("--serial-requests", type=int, default=200, help="requests per variant per 1-conn round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=300, help="requests per variant before measuring")
    parser.add_argument("--monitor-requests", type=int, default=300, help="untimed auth requests under MONITOR")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for any one block")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave server and client unpinned")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    command = bench_command("auth_ratelimit.py", argv)
    section = render(args, results, command)
    publish(section, write=args.write, start=SECTION_START, end=SECTION_END, intro=MD_INTRO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
