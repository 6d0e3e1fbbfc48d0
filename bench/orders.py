"""Benchmark: a batch of 100 orders end to end through the API and the paper engine, against bulk-inserting them.

Run from the repository root: `.venv/bin/python bench/orders.py [--quick] [--write]`. It creates (if missing)
and migrates a dedicated PostgreSQL database, provisions a non-public tier (batches of 100, limits the run
cannot reach) with one trading key and ample paper balances, and starts one daphne process serving this
module's `application`: the project's ASGI app with the paper engine running in process (embedded: no
Redis) on a fixed BTC-USDT book, plus two bench-only paths handled before Django:

- `POST /bench/bare`: the baseline, the same 100 order rows written with one `bulk_create` in a
  transaction (no authentication, validation, balances or execution), over the same HTTP hop;
- `GET /bench/stats`: since the last call, SQL statements by thread (request vs engine) and the time each
  batch spent in placement's transaction and waiting for the engine's report.

With `--redis URL` it measures the production layout instead: the same daphne process with `REDIS_URL` (a
dedicated Redis database, flushed first), and the paper engine in its own process (`manage.py runpaper`)
reached over Redis; the book is published into the Redis bus with its checkpoint before either starts.
The engine's statements are then made in that process and are not counted here.

Each round this process sends one `POST /api/hft/orders/batch` (60 resting buys, 20 resting sells, 10 IOC
buys and 10 market sells that execute at once) and one bare request over a keep-alive connection, the
order alternating; between rounds, untimed, it cancels the resting orders (`cancel-all`). Latency is the
client's, per batch. Query counts per batch are read from the server for batch sizes 10, 50 and 100.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
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
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/hftplatform_bench_orders"
# db 12: CI tests use 15, bench/auth_ratelimit.py 13 and bench/ingest.py 14; this one is flushed at the start.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
HOST = "127.0.0.1"
TIER_SLUG = "bench-orders"
CUSTOMER_NAME = "Bench orders"
SECTION_START = "<!-- bench:orders:start -->"
SECTION_END = "<!-- bench:orders:end -->"
REDIS_SECTION_START = "<!-- bench:orders-redis:start -->"
REDIS_SECTION_END = "<!-- bench:orders-redis:end -->"
P95_TARGET_MS = 50.0
BATCH_SIZE = 100
# Batch sizes whose SQL statements are counted; each holds every kind of order (resting, IOC, market).
QUERY_SIZES = (10, 50, BATCH_SIZE)
VACUUMED = ("orders_order", "orders_fill", "orders_balance", "tiers_customer")
MD_INTRO = (
    "# Benchmarks\n\nFigures from the scripts in `bench/`, each against a bare baseline measured in the same run.\n"
)
# The server's fixed book (consolidated:BTC-USDT, price exponent 2, size exponent 4): 20 levels a side.
BOOK = "consolidated:BTC-USDT"
BIDS = [(6_499_900 - 100 * i, 50_000) for i in range(20)]  # 64999.00 down, 5 BTC each
ASKS = [(6_500_100 + 100 * i, 50_000) for i in range(20)]  # 65001.00 up


# --- the server side (imported by daphne as bench.orders:application) -------------------------------------

_counts: Counter[str] = Counter()
_phases_ms: dict[str, list[float]] = {"placement transaction": [], "engine (submit to report)": []}
_counts_lock = threading.Lock()


def _count_query(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    kind = "engine" if threading.current_thread().name.startswith("paper-") else "request"
    with _counts_lock:
        _counts[kind] += 1
    return execute(sql, params, many, context)


def _install_counter(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)


def build_application() -> Any:
    """The project's ASGI app, the engine started on a published book, and the two bench paths."""
    import django

    django.setup()  # before any model is imported
    from asgiref.sync import sync_to_async
    from django.conf import settings
    from django.db.backends.signals import connection_created

    from apps.orderbook.domain.events import SNAPSHOT, BookEvent
    from apps.orderbook.services.market import get_bus, get_hub
    from apps.orders.services import placement
    from apps.orders.services.engine.runtime import start_runtime
    from hftplatform.asgi import application as project

    connection_created.connect(_install_counter)
    _time_phase(placement, "_record", "placement transaction")
    _time_phase(placement, "_submit", "engine (submit to report)")
    if not settings.REDIS_URL:  # embedded: the book and the engine live in this process
        now = time.time_ns()
        get_bus().publish([BookEvent(BOOK, 0, SNAPSHOT, tuple(BIDS), tuple(ASKS), 2, 4, None, now, 0)], now)
        start_runtime(get_hub())
    else:  # the book came over Redis (seed_redis_book); the engine runs in `manage.py runpaper`
        get_hub()
    bare = sync_to_async(bare_insert, thread_sensitive=False)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path in {"/bench/bare", "/bench/stats"}:
            while (await receive()).get("more_body"):
                pass
            if path == "/bench/bare":
                await bare()
                body = b'{"ok":true}'
            else:
                with _counts_lock:
                    body = json.dumps({"queries": dict(_counts), "phases_ms": _phases_ms}).encode()
                    _counts.clear()
                    for values in _phases_ms.values():
                        values.clear()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await project(scope, receive, send)

    return app


def _time_phase(module: Any, name: str, label: str) -> None:
    """Wrap `module.name` to record its wall time under `label` (bench server only)."""
    inner = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return inner(*args, **kwargs)
        finally:
            with _counts_lock:
                _phases_ms[label].append((time.perf_counter_ns() - start) / 1e6)

    setattr(module, name, timed)


def bare_insert() -> None:
    """The baseline: 100 order rows, as placement would build them, in one bulk INSERT and one transaction."""
    from django.db import close_old_connections, transaction

    from apps.orderbook.models import Instrument
    from apps.orders.models import Order
    from apps.tiers.models import Customer

    close_old_connections()
    customer_id, instrument_id = _bare_ids(Customer, Instrument)
    rows = [
        Order(
            customer_id=customer_id,
            client_order_id=f"bare-{uuid.uuid4().hex[:20]}",
            instrument_id=instrument_id,
            venue="paper",
            side="buy",
            type="limit",
            time_in_force="GTC",
            price=Decimal("64000.00"),
            quantity=Decimal("0.01"),
            fee_currency="USDT",
            status="PENDING",
        )
        for _ in range(BATCH_SIZE)
    ]
    with transaction.atomic():
        Order.objects.bulk_create(rows)


_bare_cache: tuple[int, int] | None = None


def _bare_ids(customer_model: Any, instrument_model: Any) -> tuple[int, int]:
    global _bare_cache
    if _bare_cache is None:
        customer = customer_model.objects.get(name=CUSTOMER_NAME)
        _bare_cache = (customer.pk, instrument_model.objects.get(symbol="BTC-USDT").pk)
    return _bare_cache


def __getattr__(name: str) -> Any:
    if name == "application":  # built on first access, in the server process only
        app = build_application()
        globals()["application"] = app
        return app
    raise AttributeError(name)


# --- the bench side -----------------------------------------------------------------------------------------


def provision() -> str:
    """The bench tier, customer and key (older ones removed), ample balances, and no orders left over."""
    tier_fields = {
        "name": "Bench orders (unlimited)",
        "max_ws_connections": 1,
        "max_subscriptions_per_connection": 1,
        "max_batch_size": BATCH_SIZE,
        "features": ["snapshots", "json_stream", "batch_orders"],
    }
    customer, secret = bench_key(TIER_SLUG, CUSTOMER_NAME, tier_fields, label="bench", can_trade=True)
    from django.db import connections

    from apps.orders.models import Balance, DeadMansSwitch, Fill, Order

    Fill.objects.filter(customer=customer).delete()
    Order.objects.filter(customer=customer).delete()
    DeadMansSwitch.objects.filter(customer=customer).delete()
    for currency, amount in (("USDT", "1000000000"), ("BTC", "100000")):
        Balance.objects.update_or_create(
            customer=customer, currency=currency, defaults={"available": Decimal(amount), "locked": 0}
        )
    connections.close_all()
    vacuum_analyze(os.environ["DATABASE_URL"], VACUUMED)
    return secret


def seed_redis_book(redis_url: str) -> None:
    """Flush the bench's Redis database, then publish the fixed book and its checkpoint, as a feed runner
    would: the web process and the engine process each start their hub from it."""
    import redis

    from apps.orderbook.domain.events import SNAPSHOT, BookEvent
    from apps.orderbook.services.market import get_bus

    redis.Redis.from_url(redis_url).flushdb()
    bus = get_bus()
    now = time.time_ns()
    (event,) = bus.publish([BookEvent(BOOK, 0, SNAPSHOT, tuple(BIDS), tuple(ASKS), 2, 4, None, now, 0)], now)
    bus.checkpoint(event)


@contextlib.contextmanager
def running_engine(env: dict[str, str], redis_url: str, log: IO[bytes]) -> Iterator[None]:
    """`manage.py runpaper` in its own process, until it holds the engine's lease."""
    import redis

    from apps.orderbook.services.supervision import LEASE_PREFIX
    from apps.orders.services.engine.redis_transport import LEASE_NAME

    client = redis.Redis.from_url(redis_url)
    cmd = [sys.executable, "manage.py", "runpaper"]
    with running_process(
        cmd,
        cwd=ROOT,
        env=env,
        log=log,
        is_ready=lambda: bool(client.exists(LEASE_PREFIX + LEASE_NAME)),
        stop_timeout_s=15,
        name="runpaper",
    ):
        yield


def vacuum_analyze(database_url: str, tables: tuple[str, ...]) -> None:
    """Reclaim dead rows and refresh the planner's statistics, standing in for autovacuum, which these
    machines' PostgreSQL runs without. Without it, after a few runs the lookup of a batch's client ids picked
    a bitmap scan over 400,000 dead index entries (37 ms instead of well under 1 ms), and within one run the
    engine's batch grew from 26 ms to 97 ms over 260 rounds (18 ms again right after a VACUUM)."""
    import psycopg
    from psycopg import sql

    url = urlsplit(database_url)._replace(scheme="postgresql").geturl()
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        for table in tables:
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def batch_body(size: int, round_no: int) -> bytes:
    """60% resting buys, 20% resting sells, 10% IOC buys and 10% market sells that execute at once."""
    orders = []
    for i in range(size):
        cid = f"r{round_no}-{i}"
        share = i * 10 // size
        if share < 6:
            orders.append({"client_order_id": cid, "pair": "BTC/USDT", "side": "buy", "price": f"{64000 + i}.00",
                           "quantity": "0.01"})  # fmt: skip
        elif share < 8:
            orders.append({"client_order_id": cid, "pair": "BTC-USDT", "side": "sell", "price": f"{66000 + i}.00",
                           "quantity": "0.01"})  # fmt: skip
        elif share < 9:
            orders.append({"client_order_id": cid, "pair": "BTC-USDT", "side": "buy", "price": "65002.00",
                           "quantity": "0.01", "time_in_force": "IOC"})  # fmt: skip
        else:
            orders.append({"client_order_id": cid, "pair": "BTC-USDT", "side": "sell", "type": "market",
                           "quantity": "0.01"})  # fmt: skip
    return json.dumps({"orders": orders}).encode()


class Http:
    """One keep-alive HTTP/1.1 connection (raw asyncio streams, Content-Length bodies)."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes, int]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        start = time.perf_counter_ns()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in raw.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        payload = await self.reader.readexactly(length)
        return int(raw[9:12]), payload, time.perf_counter_ns() - start

    def close(self) -> None:
        self.writer.close()


async def measure(port: int, key: str, args: argparse.Namespace) -> dict[str, Any]:
    http = Http(port, key)
    await http.open()
    api_ms: list[float] = []
    bare_ms: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[int] = Counter()
    try:
        for round_no in range(-args.warmup, args.rounds):
            if round_no == 0:
                await http.request("GET", "/bench/stats")  # forget the warm-up
            variants = ["api", "bare"] if round_no % 2 == 0 else ["bare", "api"]
            for variant in variants:
                if variant == "api":
                    status, payload, elapsed = await http.request(
                        "POST", "/api/hft/orders/batch", batch_body(BATCH_SIZE, round_no + args.warmup)
                    )
                    if status != 200:
                        errors[status] += 1
                    elif round_no >= 0:
                        statuses.update(r["status"] for r in json.loads(payload)["results"])
                else:
                    status, _, elapsed = await http.request("POST", "/bench/bare")
                if round_no >= 0:
                    (api_ms if variant == "api" else bare_ms).append(elapsed / 1e6)
            await http.request("POST", "/api/hft/orders/cancel-all", b"{}")
            if args.vacuum_every and round_no % args.vacuum_every == args.vacuum_every - 1:
                vacuum_analyze(args.database_url, VACUUMED)  # untimed: what autovacuum would do
        _, stats, _ = await http.request("GET", "/bench/stats")
        phases = json.loads(stats)["phases_ms"]
        queries = {}
        for size in QUERY_SIZES:
            await http.request("POST", "/api/hft/orders/batch", batch_body(size, 10_000 + size))
            _, counted, _ = await http.request("GET", "/bench/stats")
            queries[size] = json.loads(counted)["queries"]
            await http.request("POST", "/api/hft/orders/cancel-all", b"{}")
            await http.request("GET", "/bench/stats")
    finally:
        http.close()
    return {
        "api": api_ms,
        "bare": bare_ms,
        "statuses": statuses,
        "errors": errors,
        "queries": queries,
        "phases": phases,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


@contextlib.contextmanager
def running_server(env: dict[str, str], port: int, log: IO[bytes]) -> Iterator[None]:
    cmd = [str(VENV_BIN / "daphne"), "-v", "0", "-b", HOST, "-p", str(port), "bench.orders:application"]
    with running_process(cmd, cwd=ROOT, env=env, log=log, is_ready=lambda: is_listening(port, HOST)):
        yield


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hftplatform.settings",
        "DATABASE_URL": args.database_url,
        "HFT_USAGE_BACKGROUND": "0",
        "HFT_PAPER_DEADMAN_MS": "0",
    }
    if args.redis:  # production: Redis bus, limiter and channel layer; the engine in its own process
        env["REDIS_URL"] = args.redis
    else:  # embedded: in-process engine, bus and channel layer
        env.pop("REDIS_URL", None)
    os.environ.update(env)
    if not args.redis:
        os.environ.pop("REDIS_URL", None)
    started = datetime.now(UTC)
    ensure_database(args.database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    key = provision()
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-orders-", suffix=".log", delete=False)  # noqa: SIM115
    with contextlib.ExitStack() as stack:
        stack.enter_context(log)
        if args.redis:
            seed_redis_book(args.redis)
            stack.enter_context(running_engine(env, args.redis, log))
        stack.enter_context(running_server(env, port, log))
        results = asyncio.run(measure(port, key, args))
    results["started"] = started
    results["duration_s"] = (datetime.now(UTC) - started).total_seconds()
    results["log"] = log.name
    return results


def render(args: argparse.Namespace, res: dict[str, Any], command: str) -> str:
    api, bare = res["api"], res["bare"]
    added = [a - b for a, b in zip(api, bare, strict=True)]
    queries = res["queries"]
    request_q = {size: q.get("request", 0) for size, q in queries.items()}
    engine_q = {size: q.get("engine", 0) for size, q in queries.items()}
    constant = len(set(request_q.values())) == 1 and len(set(engine_q.values())) == 1
    elsewhere = "— (its own process)"
    p95 = percentile(api, 0.95)
    statuses = ", ".join(f"{s} {n / args.rounds:.0f}" for s, n in sorted(res["statuses"].items()))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    engine = (
        "the paper engine (`manage.py runpaper`, its own process, reached over Redis)"
        if args.redis
        else "the in-process paper engine"
    )
    server = (
        "one daphne process, `DEBUG` off, PostgreSQL (psycopg pool), Redis (bus, rate limits, channel layer, "
        "engine commands and reports; its database flushed first); the engine in its own process, its hub fed "
        "from the Redis bus; a fixed book of 20 levels a side, published with its checkpoint before the start"
        if args.redis
        else "one daphne process, `DEBUG` off, PostgreSQL (psycopg pool), embedded (no Redis): in-process bus, "
        "engine and channel layer; a fixed book of 20 levels a side"
    )
    lines = [
        REDIS_SECTION_START if args.redis else SECTION_START,
        "## Orders: a batch of 100 end to end, production layout with Redis (issue 6)"
        if args.redis
        else "## Orders: a batch of 100 end to end (issue 6)",
        "",
        "`POST /api/hft/orders/batch` with 100 orders through one daphne process: API-key auth and rate limit, "  # noqa: S608 - Markdown prose
        "parsing, validation against the live book's mid, balance locks (`SELECT ... FOR UPDATE`), one bulk "
        f"INSERT, {engine} executing and writing fills and balances in one batch, and the "
        "response built from its reports. Baseline: the same 100 order rows bulk-inserted in one transaction "
        "by the same process over the same HTTP hop. Generated by the command below; do not edit between the "
        "markers.",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Date: {res['started']:%Y-%m-%d %H:%M} UTC; the run took {res['duration_s']:.0f} s",
        f"- Machine: nproc {os.cpu_count()}, Linux {platform.release()}; Python {platform.python_version()}; "
        f"load average at the end (1/5/15 min): {load}",
        f"- Server: {server}",
        f"- Method: {args.warmup} warm-up rounds, then {args.rounds} rounds of one API batch and one bare request "
        "(order alternating), one keep-alive connection; resting orders canceled between rounds, untimed. "
        f"Each batch: {statuses} (per batch). "
        + (
            f"Every {args.vacuum_every} rounds, untimed, `VACUUM ANALYZE` of the order tables: this machine's "
            "PostgreSQL runs with autovacuum off, and without it the engine's write slows as dead rows pile up."
            if args.vacuum_every
            else "No VACUUM during the run (`--vacuum-every 0`)."
        ),
        "",
        "| | bare (bulk INSERT of 100) | API batch of 100 | added |",
        "|---|---:|---:|---:|",
        f"| p50 (ms) | {percentile(bare, 0.5):.2f} | {percentile(api, 0.5):.2f} | {statistics.median(added):+.2f} |",
        f"| p95 (ms) | {percentile(bare, 0.95):.2f} | {p95:.2f} | {percentile(added, 0.95):+.2f} |",
        f"| max (ms) | {max(bare):.2f} | {max(api):.2f} | |",
        "",
        "Where an API batch's time goes (measured in the server, same rounds; the rest is HTTP, authentication, "
        "parsing, reference data and rendering):",
        "",
        "| phase | p50 (ms) | p95 (ms) |",
        "|---|---:|---:|",
        *[
            f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.95):.2f} |"
            for name, values in res["phases"].items()
            if values
        ],
        "",
        "SQL statements per batch (counted in the server by thread; transaction control included):",
        "",
        "| orders in the batch | request thread | engine thread |",
        "|---:|---:|---:|",
        *[
            f"| {size} | {request_q[size]} | {elsewhere if args.redis else engine_q[size]} |"
            for size in sorted(queries)
        ],
        "",
        "### Targets",
        "",
        f"- p95 under {P95_TARGET_MS:.0f} ms for 100 orders: {'**met**' if p95 < P95_TARGET_MS else '**missed**'} "
        f"({p95:.2f} ms).",
        f"- A constant number of queries per batch: {'**met**' if constant else '**missed**'}"
        + (" (the request thread; the engine's are counted by the embedded run)." if args.redis else "."),
        f"- Non-200 answers: {sum(res['errors'].values())}.",
        REDIS_SECTION_END if args.redis else SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section in BENCHMARKS.md")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="20 rounds, 3 warm-up")
    parser.add_argument(
        "--vacuum-every", type=int, default=20, help="VACUUM ANALYZE every N rounds, untimed (0: never)"
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument(
        "--redis",
        metavar="URL",
        nargs="?",
        const=DEFAULT_REDIS_URL,
        default=None,
        help=f"the production layout: Redis at URL (flushed first; default {DEFAULT_REDIS_URL}), the engine in "
        "its own process",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup = 20, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    section = render(args, results, bench_command("orders.py", argv))
    start, end = (REDIS_SECTION_START, REDIS_SECTION_END) if args.redis else (SECTION_START, SECTION_END)
    publish(section, write=args.write, start=start, end=end, intro=MD_INTRO)
    if results["errors"]:
        print(f"non-200 answers: {dict(results['errors'])}; server log: {results['log']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
