"""Shared by the benchmarks: their PostgreSQL database, a bench customer and key on an unlimited tier, the
processes they serve from, and their BENCHMARKS.md section."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
# The rate limits of a non-public bench tier: limits no benchmark can reach, so none is throttled.
UNLIMITED_RATES: dict[str, Any] = {
    "refill_per_second": 1_000_000,
    "burst": 100_000_000,
    "quota_per_minute": 2_000_000_000,
    "quota_per_hour": 2_000_000_000,
    "quota_per_day": 2_000_000_000,
    "monthly_price": 0,
    "is_public": False,
}


def ensure_database(database_url: str) -> None:
    """Create the benchmark's own PostgreSQL database if it does not exist yet."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def bench_key(
    tier_slug: str, customer_name: str, tier_fields: dict[str, Any], *, label: str, can_trade: bool = False
) -> tuple[Any, str]:
    """A bench customer on its own non-public tier (`UNLIMITED_RATES` plus `tier_fields`) and a fresh key
    (the customer's older keys deleted): (customer, secret). Sets Django up first."""
    import django

    django.setup()
    from apps.tiers.models import APIKey, Customer, Tier
    from apps.tiers.services.accounts import issue_key

    tier, _ = Tier.objects.update_or_create(slug=tier_slug, defaults={**UNLIMITED_RATES, **tier_fields})
    customer, _ = Customer.objects.update_or_create(name=customer_name, defaults={"tier": tier, "status": "active"})
    for old in APIKey.objects.filter(customer=customer):
        old.delete()
    _, secret = issue_key(customer, label=label, can_read=True, can_trade=can_trade)
    return customer, secret


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def running_process(
    cmd: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: IO[bytes],
    is_ready: Callable[[], bool],
    timeout_s: float = 60,
    stop_timeout_s: float = 10,
    name: str = "",
) -> Iterator[subprocess.Popen[bytes]]:
    """`cmd` running, its output in `log`, once `is_ready()`; terminated (killed if it lingers) on exit."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while not is_ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name or Path(cmd[0]).name} did not start (exit {proc.returncode}); see {log.name}"
                )
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def write_section(section: str, start: str, end: str, intro: str) -> None:
    """Replace the text from `start` to `end` with `section` (which carries both markers), or append it."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else intro
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(text)
    print(f"wrote {BENCHMARKS_MD.name}", flush=True)


def bench_command(script: str, argv: list[str] | None) -> str:
    """The command line a section records: the venv's python, `bench/<script>` and its arguments."""
    return " ".join([".venv/bin/python", f"bench/{script}", *(sys.argv[1:] if argv is None else argv)])


def publish(section: str, *, write: bool, start: str, end: str, intro: str) -> None:
    """Print a benchmark's section; with `write` (its --write), also replace it in BENCHMARKS.md."""
    print()
    print(section)
    if write:
        write_section(section, start, end, intro)
