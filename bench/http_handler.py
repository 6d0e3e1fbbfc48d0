"""HTTP handler benchmark: Django's stock ASGIHandler against ours (`hftplatform/handler.py`), same run.

Two daphne processes serve the same trivial DRF endpoint (`/bench/bare`, no authentication), one with
`HFT_SYNC_CHAIN_HANDLER=0` (Django's handler: a new thread per request and three hand-offs between the
event loop and it), one with ours (the middleware chain and view in one hop on a reused thread). Both are
pinned to the same CPU and loaded in turn, alternating every round; the server's CPU per request is read
from /proc. Embedded settings: the endpoint touches neither database nor Redis.

    .venv/bin/python bench/http_handler.py [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.auth_ratelimit import HOST, VENV_BIN, Block, build_request, run_block  # noqa: E402
from bench.report import bench_command, free_port, is_listening, publish, running_process  # noqa: E402

VARIANTS = ("stock", "ours")
SECTION_START = "<!-- bench:http_handler:start -->"
SECTION_END = "<!-- bench:http_handler:end -->"
MD_INTRO = "# Benchmarks\n"
PATH = "/bench/bare"


@dataclass
class Round:
    block: Block
    cpu_us_per_request: float


@dataclass
class Phase:
    concurrency: int
    requests: int
    rounds: list[dict[str, Round]] = field(default_factory=list)

    def median(self, variant: str, metric: str) -> float:
        return statistics.median(_metric(r[variant], metric) for r in self.rounds)

    def ratio(self, metric: str) -> float:
        return statistics.median(_metric(r["ours"], metric) / _metric(r["stock"], metric) for r in self.rounds)

    def spread(self, metric: str) -> tuple[float, float]:
        ratios = sorted(_metric(r["ours"], metric) / _metric(r["stock"], metric) for r in self.rounds)
        return ratios[0], ratios[-1]


def _metric(r: Round, metric: str) -> float:
    if metric == "rps":
        return r.block.rps
    if metric == "cpu":
        return r.cpu_us_per_request
    return r.block.percentile_ms({"p50": 0.50, "p95": 0.95}[metric])


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread the process has had, in clock ticks (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@contextlib.contextmanager
def server(env: dict[str, str], cpu: int | None, log_dir: Path, name: str) -> Iterator[tuple[int, int]]:
    port = free_port()
    cmd = [str(VENV_BIN / "daphne"), "-v", "0", "-b", HOST, "-p", str(port), "hftplatform.asgi:application"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    ready = functools.partial(is_listening, port, HOST)
    with (
        (log_dir / f"{name}.log").open("wb") as log,
        running_process(cmd, cwd=ROOT, env=env, log=log, is_ready=ready) as proc,
    ):
        yield port, proc.pid


async def measure(port: int, pid: int, concurrency: int, count: int, timeout_s: float) -> Round:
    request = build_request(PATH, port, "none")
    hz = os.sysconf("SC_CLK_TCK")
    before = cpu_ticks(pid)
    block = await run_block(port, request, count, concurrency, timeout_s)
    used_s = (cpu_ticks(pid) - before) / hz
    if block.statuses[200] != count:
        raise RuntimeError(f"answered {dict(block.statuses)}")
    return Round(block, used_s / count * 1e6)


async def drive(args: argparse.Namespace, servers: dict[str, tuple[int, int]]) -> list[Phase]:
    for port, pid in servers.values():
        await measure(port, pid, args.concurrency, args.warmup, args.timeout)
    phases = [Phase(args.concurrency, args.requests), Phase(1, args.serial_requests)]
    for phase in phases:
        for index in range(args.rounds):
            order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
            result = {}
            for variant in order:
                port, pid = servers[variant]
                result[variant] = await measure(port, pid, phase.concurrency, phase.requests, args.timeout)
            phase.rounds.append(result)
            print(
                f"  c={phase.concurrency} round {index + 1}/{args.rounds}: "
                + "  ".join(
                    f"{v} {result[v].block.rps:,.0f} req/s p95 {result[v].block.percentile_ms(0.95):.2f} ms "
                    f"cpu {result[v].cpu_us_per_request:.0f} µs"
                    for v in VARIANTS
                ),
                flush=True,
            )
    return phases


def render(phases: list[Phase], command: str, started: datetime, took_s: float, pinned: str) -> str:
    load = os.getloadavg()
    lines = [
        SECTION_START,
        "## HTTP handler: Django's stock ASGIHandler against ours",
        "",
        'The same trivial DRF endpoint (`/bench/bare`: no authentication, `{"ok": true}`) served by two daphne '
        "processes, Django's stock handler (`HFT_SYNC_CHAIN_HANDLER=0`) and ours (`hftplatform/handler.py`, the "
        "default), loaded in turn. Generated by the command below; do not edit between the markers.",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; the run took {took_s:.0f} s",
        f"- Machine: nproc {os.cpu_count()}, {platform.machine()}, Linux {platform.release()}; "
        f"Python {platform.python_version()}",
        f"- Load average when the run ended (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        f"- Pinning: {pinned}",
        "- Method: warm-up, then rounds alternating the two servers (the first one alternates too). Figures are "
        "medians across rounds; the ratio column is the median of each round's ours / stock, the range its "
        "spread. Server CPU per request is utime + stime of the daphne process over the round (/proc).",
        "",
    ]
    for phase in phases:
        title = (
            f"### {phase.concurrency} connections, closed loop, {phase.requests} requests per server per round"
            if phase.concurrency > 1
            else f"### One connection, {phase.requests} requests per server per round"
        )
        lines += [
            title,
            "",
            "| | stock | ours | ours / stock | range over rounds |",
            "|---|---:|---:|---:|---:|",
        ]
        for metric, label, fmt in (
            ("rps", "requests/s", ",.0f"),
            ("p50", "p50 latency (ms)", ".3f"),
            ("p95", "p95 latency (ms)", ".3f"),
            ("cpu", "server CPU per request (µs)", ",.0f"),
        ):
            low, high = phase.spread(metric)
            lines.append(
                f"| {label} | {phase.median('stock', metric):{fmt}} | {phase.median('ours', metric):{fmt}} "
                f"| {phase.ratio(metric):.3f} | {low:.3f} … {high:.3f} |"
            )
        lines.append("")
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section in BENCHMARKS.md")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=800, help="requests per server per loaded round")
    parser.add_argument("--serial-requests", type=int, default=300, help="requests per server per 1-conn round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, t0 = datetime.now(UTC), time.monotonic()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu: int | None = None
    pinned = "none"
    if args.pin and len(cpus) >= 2 and shutil.which("taskset"):
        server_cpu = cpus[-1]
        os.sched_setaffinity(0, set(cpus[:-1]))
        pinned = f"both daphne processes on CPU {server_cpu}, load generator on CPU {','.join(map(str, cpus[:-1]))}"
    with tempfile.TemporaryDirectory(prefix="bench-handler-") as tmp:
        base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "HFT_SYNC_CHAIN_HANDLER"}}
        base.update(
            DJANGO_SETTINGS_MODULE="bench.settings_auth",
            DJANGO_DEBUG="0",
            HFT_LOG_LEVEL="WARNING",
            HFT_VAR_DIR=tmp,
            PYTHONPATH=str(ROOT),
        )
        envs = {"stock": {**base, "HFT_SYNC_CHAIN_HANDLER": "0"}, "ours": {**base, "HFT_SYNC_CHAIN_HANDLER": "1"}}
        log_dir = Path(tmp)
        with (
            server(envs["stock"], server_cpu, log_dir, "stock") as stock,
            server(envs["ours"], server_cpu, log_dir, "ours") as ours,
        ):
            phases = asyncio.run(drive(args, {"stock": stock, "ours": ours}))
    command = bench_command("http_handler.py", argv)
    section = render(phases, command, started, time.monotonic() - t0, pinned)
    publish(section, write=args.write, start=SECTION_START, end=SECTION_END, intro=MD_INTRO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
