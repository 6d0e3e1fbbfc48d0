"""Benchmark: one trivial endpoint bare and behind API-key auth + rate limiting, served by daphne in the same run.

Run from the repository root: `.venv/bin/python bench/auth_ratelimit.py [--write]`. It creates (if missing)
and migrates a dedicated PostgreSQL database, provisions a non-public tier with limits too large to ever
refuse, starts daphne with `bench.settings_auth`, and drives `/bench/bare` and `/bench/auth` from this
process over keep-alive connections, alternating the two in rounds. Figures are medians across rounds;
ratios and differences are taken within a round, so both variants share the machine's noise. Redis round
trips come from `INFO commandstats` around the auth rounds, cross-checked with MONITOR on the bench db.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import socket
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

import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SETTINGS_MODULE = "bench.settings_auth"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/hftplatform_bench"
HOST = "127.0.0.1"
VARIANTS = ("bare", "auth")
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

    variant: str
    concurrency: int
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
    """Several rounds at one concurrency, bare and auth alternating (the first variant alternates too)."""

    concurrency: int
    requests: int
    rounds: list[dict[str, Block]] = field(default_factory=list)

    def median(self, variant: str, metric: str) -> float:
        return statistics.median(_metric(r[variant], metric) for r in self.rounds)

    def median_ratio(self, metric: str) -> float:
        return statistics.median(_metric(r["auth"], metric) / _metric(r["bare"], metric) for r in self.rounds)

    def median_added(self, metric: str) -> float:
        return statistics.median(_metric(r["auth"], metric) - _metric(r["bare"], metric) for r in self.rounds)

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

    def per_request(self, command: str | None = None) -> float:
        total = self.calls[command] if command else sum(self.calls.values())
        return total / self.requests if self.requests else 0.0


# --- Setup: database, tier and key, server --------------------------------------------------------


def ensure_database(database_url: str) -> None:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300
    )


def provision_key() -> str:
    """A fresh key on a non-public tier whose limits this benchmark cannot reach (older bench keys deleted)."""
    import django

    django.setup()
    from django.db import connections

    from apps.tiers.models import APIKey, Customer, Tier
    from apps.tiers.services.accounts import issue_key

    limits: dict[str, Any] = {
        "name": "Bench (unlimited)",
        "refill_per_second": 1_000_000,
        "burst": 100_000_000,
        "quota_per_minute": 2_000_000_000,
        "quota_per_hour": 2_000_000_000,
        "quota_per_day": 2_000_000_000,
        "monthly_price": 0,
        "max_ws_connections": 1,
        "max_subscriptions_per_connection": 1,
        "is_public": False,
    }
    tier, _ = Tier.objects.update_or_create(slug=TIER_SLUG, defaults=limits)
    customer, _ = Customer.objects.update_or_create(name=CUSTOMER_NAME, defaults={"tier": tier, "status": "active"})
    for old in APIKey.objects.filter(customer=customer):
        old.delete()
    _, secret = issue_key(customer, label=KEY_LABEL, can_read=True)
    connections.close_all()
    return secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(env: dict[str, str], port: int, cpus: set[int] | None, log: IO[bytes]) -> Iterator[int]:
    # taskset pins before exec, so every thread daphne starts inherits the affinity.
    # -v 0: no access log, which would otherwise cost both variants a line of stdout per request.
    cmd = [str(VENV_BIN / "daphne"), "-v", "0", "-b", HOST, "-p", str(port), "hftplatform.asgi:application"]
    if cpus is not None:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _is_listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start (exit {proc.returncode}); see {log.name}")
            time.sleep(0.1)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


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


async def run_block(port: int, request: bytes, count: int, concurrency: int, timeout_s: float) -> Block:
    """`count` requests over `concurrency` keep-alive connections, each sending its next once answered."""
    conns = [await asyncio.open_connection(HOST, port) for _ in range(concurrency)]
    remaining = [count]
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + timeout_s

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while remaining[0] > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"block of {count} requests exceeded {timeout_s} s")
            remaining[0] -= 1
            start = time.perf_counter_ns()
            writer.write(request)
            status = await read_response(reader)
            latencies.append(time.perf_counter_ns() - start)
            statuses[status] += 1

    try:
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(r, w) for r, w in conns)), timeout_s + 5)
        elapsed = time.perf_counter() - start
    finally:
        for _, writer in conns:
            writer.close()
    return Block("", concurrency, elapsed, latencies, statuses)


# --- Redis accounting ---------------------------------------------------------------------------


def command_calls(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter(
        {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info"}
    )


@dataclass
class MonitorTally:
    """Commands in the bench db seen by MONITOR: sent by clients (round trips) and run inside Lua."""

    client: Counter[str] = field(default_factory=Counter)
    lua: Counter[str] = field(default_factory=Counter)
    requests: int = 0


def monitor_db(redis_url: str, tally: MonitorTally, stop_token: str, ready: threading.Event, limit_s: float) -> None:
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
            name = entry["command"].split(" ", 1)[0].lower()
            if name == "echo" and stop_token in entry["command"]:
                return
            (tally.lua if entry["client_type"] == "lua" else tally.client)[name] += 1


# --- The run -----------------------------------------------------------------------------------


@dataclass
class Results:
    load: Phase
    serial: Phase
    redis: dict[str, RedisAccount]
    monitor: MonitorTally
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
        order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
        result: dict[str, Block] = {}
        for variant in order:
            before = command_calls(redis_client) if redis_client else None
            block = await run_block(port, requests[variant], phase.requests, phase.concurrency, timeout_s)
            block.variant = variant
            if redis_client and redis_accounts is not None and before is not None:
                account = redis_accounts[variant]
                account.requests += phase.requests
                account.calls.update(command_calls(redis_client) - before)
            result[variant] = block
        phase.rounds.append(result)
        print(
            f"  c={phase.concurrency} round {index + 1}/{rounds}: "
            + "  ".join(
                f"{v} {result[v].rps:,.0f} req/s p50 {result[v].percentile_ms(0.5):.2f} "
                f"p95 {result[v].percentile_ms(0.95):.2f} ms"
                for v in VARIANTS
            ),
            flush=True,
        )


async def monitored_pass(port: int, request: bytes, count: int, redis_url: str, timeout_s: float) -> MonitorTally:
    """Untimed auth requests under MONITOR, attributing every command in the bench db (other dbs ignored)."""
    tally = MonitorTally(requests=count)
    token = f"bench-monitor-end-{os.getpid()}-{time.time_ns()}"
    ready = threading.Event()
    thread = threading.Thread(target=monitor_db, args=(redis_url, tally, token, ready, timeout_s), daemon=True)
    thread.start()
    if not ready.wait(5):
        raise RuntimeError("MONITOR did not start")
    await asyncio.sleep(0.2)
    block = await run_block(port, request, count, 1, timeout_s)
    if block.statuses[200] != count:
        raise RuntimeError(f"monitored pass answered {dict(block.statuses)}")
    redis.Redis.from_url(redis_url).echo(token)
    thread.join(timeout_s)
    return tally


async def drive(args: argparse.Namespace, port: int, key: str) -> tuple[Phase, Phase, dict[str, RedisAccount], Any]:
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
    serial = Phase(1, args.serial_requests)
    await run_phase(port, requests, serial, rounds=args.rounds, timeout_s=args.timeout)
    tally = await monitored_pass(port, requests["auth"], args.monitor_requests, args.redis_url, args.timeout)
    return load, serial, accounts, tally


def machine_facts(redis_url: str, pinned: str) -> dict[str, str]:
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
        "pinning": pinned,
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
    sys.path.insert(0, str(ROOT))
    key = provision_key()
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
        with running_server(env, port, server_cpus, log):
            load, serial, accounts, tally = asyncio.run(drive(args, port, key))
    return Results(
        load, serial, accounts, tally, pinned, started, time.monotonic() - t0, machine_facts(args.redis_url, pinned)
    )


# --- Report ------------------------------------------------------------------------------------


def phase_table(phase: Phase) -> list[str]:
    rows = [
        "| | bare | auth + rate limit | auth / bare | added by auth |",
        "|---|---:|---:|---:|---:|",
        f"| requests/s | {phase.median('bare', 'rps'):,.0f} | {phase.median('auth', 'rps'):,.0f} "
        f"| {phase.median_ratio('rps'):.3f} | {phase.median_added('rps'):+,.0f} |",
    ]
    for metric in ("p50", "p95"):
        rows.append(
            f"| {metric} latency (ms) | {phase.median('bare', metric):.3f} | {phase.median('auth', metric):.3f} "
            f"| {phase.median_ratio(metric):.3f} | {phase.median_added(metric):+.3f} |"
        )
    return rows


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render(args: argparse.Namespace, res: Results, command: str) -> str:
    load, serial = res.load, res.serial
    auth, bare = res.redis["auth"], res.redis["bare"]
    added_load = load.median_added("p95")
    added_serial = serial.median_added("p95")
    evalsha = auth.per_request("evalsha")
    mon = res.monitor
    mon_trips = sum(mon.client.values()) / mon.requests
    refusals = load.statuses("auth")[429] + serial.statuses("auth")[429]
    errors = sum(
        n for p in (load, serial) for v in VARIANTS for status, n in p.statuses(v).items() if status not in {200, 429}
    )
    push_s = os.environ.get("HFT_USAGE_PUSH_S", "2")
    in_script = ", ".join(f"{name} {n / mon.requests:.2f}" for name, n in sorted(mon.lua.items()))
    others = ", ".join(f"{name} {n / auth.requests:.4f}" for name, n in auth.calls.most_common() if name != "evalsha")
    f = res.facts
    lines = [
        SECTION_START,
        "## Authentication + rate limiting (issue 2)",
        "",
        'The same trivial DRF endpoint (`{"ok": true}`) served by one daphne process, bare '
        "(`authentication_classes = []`, `AllowAny`) and with the project defaults (API key → cached principal, "
        "one Redis Lua call for bucket + windows, key permission check, rate-limit headers and usage metering).",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Date: {res.started:%Y-%m-%d %H:%M} UTC; run took {res.duration_s:.0f} s",
        f"- Machine: nproc {f['nproc']}, {f['cpu']}, Linux {f['kernel']}; Python {f['python']}; Redis {f['redis']}",
        f"- Pinning: {f['pinning']}",
        f"- Server: daphne, `DEBUG` off, Redis db `{urlsplit(args.redis_url).path.lstrip('/')}`, PostgreSQL "
        "(not touched once warm), usage pusher thread on; a non-public tier with limits the run cannot reach",
        f"- Load: {args.rounds} rounds, each {load.requests:,} requests per variant over {load.concurrency} keep-alive "
        f"connections, then {args.rounds} rounds of {serial.requests:,} over 1 connection; bare and auth alternate "
        f"(order flipped every round) after {args.warmup:,} warm-up requests each. Medians across rounds; ratio "
        "and difference columns are medians of the per-round ratio/difference. Latency is client-side.",
        "",
        f"### Under load ({load.concurrency} connections)",
        "",
        *phase_table(load),
        "",
        "### One connection (no queueing: the per-request cost)",
        "",
        *phase_table(serial),
        "",
        "### Redis",
        "",
        "| | per auth request | per bare request |",
        "|---|---:|---:|",
        f"| EVALSHA (rate-limit script) | {evalsha:.4f} | {bare.per_request('evalsha'):.4f} |",
        f"| all commands (INFO commandstats, server-wide) | {auth.per_request():.4f} | {bare.per_request():.4f} |",
        f"| client round trips on db {urlsplit(args.redis_url).path.lstrip('/')} (MONITOR, "
        f"{mon.requests} untimed requests) | {mon_trips:.4f} | |",
        "",
        f"Other commands during the auth rounds, per request: {others or 'none'} (the usage pusher's pipeline every "
        f"{push_s} s, off the request path). Run inside the Lua script, per request: {in_script}.",
        "",
        f"Refusals (429): {refusals}; other non-200 answers: {errors}.",
        "",
        "### Targets",
        "",
        f"- ≤ {P95_TARGET_MS} ms p95 added under load: {verdict(added_load <= P95_TARGET_MS)} "
        f"({added_load:+.3f} ms at {load.concurrency} connections"
        + (f", over by {added_load - P95_TARGET_MS:.3f} ms" if added_load > P95_TARGET_MS else "")
        + f"; {added_serial:+.3f} ms on one connection"
        + (f", over by {added_serial - P95_TARGET_MS:.3f} ms" if added_serial > P95_TARGET_MS else "")
        + ").",
        f"- One Redis round trip per request: {verdict(abs(mon_trips - ROUND_TRIP_TARGET) < 0.01)} "
        f"({mon_trips:.3f} client commands per request on the bench db; EVALSHA {evalsha:.3f} per request).",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str) -> None:
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else MD_INTRO
    pattern = re.compile(re.escape(SECTION_START) + r".*?" + re.escape(SECTION_END) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section in BENCHMARKS.md")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in the loaded phase")
    parser.add_argument("--requests", type=int, default=3000, help="requests per variant per loaded round")
    parser.add_argument("--serial-requests", type=int, default=1000, help="requests per variant per 1-conn round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=500, help="requests per variant before measuring")
    parser.add_argument("--monitor-requests", type=int, default=300, help="untimed auth requests under MONITOR")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for any one block")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave server and client unpinned")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    command = " ".join([".venv/bin/python", "bench/auth_ratelimit.py", *(sys.argv[1:] if argv is None else argv)])
    section = render(args, results, command)
    print()
    print(section)
    if args.write:
        write_section(section)
        print(f"wrote {BENCHMARKS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
