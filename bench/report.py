"""Shared by the benchmarks: their PostgreSQL database, a bench tier's rates, and their BENCHMARKS.md section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
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


def write_section(section: str, start: str, end: str, intro: str) -> None:
    """Replace the text from `start` to `end` with `section` (which carries both markers), or append it."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else intro
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(text)
    print(f"wrote {BENCHMARKS_MD.name}", flush=True)
