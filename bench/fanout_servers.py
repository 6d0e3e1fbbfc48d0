"""The fan-out benchmark's three servers behind one interface: start, publish deltas, read server-side latency.

- `PlatformServer`: daphne serving `hftplatform.asgi:application` on a throwaway SQLite database and the
  benchmark's Redis db; this process publishes into the platform's `RedisBus`, as a feed runner would.
- `BareServer`: `bench/fanout_bare.py`, which makes and broadcasts the deltas itself.
- `ChannelsServer`: daphne serving `bench.fanout_channels:application`; this process `group_send`s.

Each is one server process (its CPU time read from /proc), pinned with taskset when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import redis
from websockets.asyncio.client import ClientConnection, connect

from bench.fanout_clients import ClientPlan
from bench.fanout_events import BOOK, PAIR, PRICE_EXP, SIZE_EXP, BenchMarket, delta_json
from bench.report import free_port, is_listening

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
LISTEN_BACKLOG = 4096  # K connections open at once; the default (50) would refuse most of them
PLATFORM_STAGE = "publish_to_send"
CHANNELS_GROUP = "bench-fanout"


class ServerUnavailable(RuntimeError):
    """The server started but does not serve what the benchmark needs (e.g. the platform stream is missing)."""


@dataclass(frozen=True)
class ServerSide:
    """Publish-to-last-send of the measured deltas, as the server saw it (ms); None where unknown."""

    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    count: int
    note: str = ""
    stages: dict[str, tuple[float | None, float | None, float | None]] = field(default_factory=dict)


def percentile(ordered: list[int] | list[float], q: float) -> float:
    """Nearest rank of a sorted list."""
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def server_side_from(latencies_ns: list[int], note: str = "") -> ServerSide:
    if not latencies_ns:
        return ServerSide(None, None, None, 0, note or "no sends recorded")
    ordered = sorted(latencies_ns)
    p50, p95, p99 = (percentile(ordered, q) / 1e6 for q in (0.50, 0.95, 0.99))
    return ServerSide(p50, p95, p99, len(ordered), note)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Server:
    """One server process; subclasses say how to start it, feed it and ask it for its latencies."""

    name = ""
    label = ""

    def __init__(self, env: dict[str, str], cpus: set[int] | None, log_dir: Path, seed: int) -> None:
        self.env = env
        self.cpus = cpus
        self.log_dir = log_dir
        self.port = free_port()
        self.market = BenchMarket(seed)
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def client_plan(self, count: int) -> ClientPlan:
        raise NotImplementedError

    def start(self) -> None:
        cmd = self.command()
        if self.cpus is not None:
            cmd = ["taskset", "-c", ",".join(map(str, sorted(self.cpus))), *cmd]  # threads inherit it
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not is_listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start (exit {self.process.returncode}); see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def before_case(self) -> None:
        """Called before the clients connect."""

    async def publish(self, warmup: int, measured: int, rate: float) -> tuple[list[tuple[int, int]], int]:
        """Publish warm-up then measured deltas at `rate` per second: (sequence, publish ns) of each, and the
        index of the first measured one."""
        return await self.publish_count(warmup + measured, rate), warmup

    async def publish_count(self, count: int, rate: float) -> list[tuple[int, int]]:
        raise NotImplementedError

    async def server_side(self, measured: list[tuple[int, int]]) -> ServerSide:
        raise NotImplementedError

    async def after_case(self) -> None:
        """Called once the clients are gone."""

    async def close(self) -> None:
        """Release what `publish` opened in the running event loop."""


async def paced(count: int, rate: float, step: Any) -> list[tuple[int, int]]:
    """Call `step()` (returning (sequence, publish ns)) `count` times at `rate` per second, on schedule."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    published = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        published.append(await step())
    return published


class BareServer(Server):
    name = "bare"
    label = "bare `websockets` broadcast()"

    def __init__(self, env: dict[str, str], cpus: set[int] | None, log_dir: Path, seed: int) -> None:
        super().__init__(env, cpus, log_dir, seed)
        self.seed = seed
        self.control: ClientConnection | None = None
        self.sends_ns: dict[int, int] = {}

    def command(self) -> list[str]:
        return [sys.executable, "bench/fanout_bare.py", "--port", str(self.port), "--seed", str(self.seed)]

    def client_plan(self, count: int) -> ClientPlan:
        return ClientPlan(f"ws://{HOST}:{self.port}/stream", count)

    async def publish_count(self, count: int, rate: float) -> list[tuple[int, int]]:
        if self.control is None:
            self.control = await connect(f"ws://{HOST}:{self.port}/control", compression=None, ping_interval=None)
        await self.control.send(orjson.dumps({"op": "run", "rate": rate, "count": count}).decode())
        reply = orjson.loads(await asyncio.wait_for(self.control.recv(), count / rate + 60))
        published = []
        for seq, publish_ns, send_ns in reply["events"]:
            self.sends_ns[seq] = send_ns
            published.append((seq, publish_ns))
        return published

    async def server_side(self, measured: list[tuple[int, int]]) -> ServerSide:
        return server_side_from([self.sends_ns[seq] for seq, _ in measured if seq in self.sends_ns])

    async def close(self) -> None:
        if self.control is not None:
            await self.control.close()
            self.control = None


class ChannelsServer(Server):
    name = "channels"
    label = "Channels consumer, channels-redis group_send"

    def __init__(self, env: dict[str, str], cpus: set[int] | None, log_dir: Path, seed: int) -> None:
        super().__init__(env, cpus, log_dir, seed)
        self.env = {**env, "DJANGO_SETTINGS_MODULE": "bench.settings_fanout"}
        self.seq = 0
        self.layer: Any = None
        self.sends: dict[int, tuple[int, int, int]] = {}

    def command(self) -> list[str]:
        endpoint = f"tcp:port={self.port}:interface={HOST}:backlog={LISTEN_BACKLOG}"
        return [str(VENV_BIN / "daphne"), "-v", "0", "-e", endpoint, "bench.fanout_channels:application"]

    def client_plan(self, count: int) -> ClientPlan:
        return ClientPlan(f"ws://{HOST}:{self.port}/bench/ws", count)

    async def before_case(self) -> None:
        # Consumers of the previous case left the group on disconnect; drop any that did not.
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        client.delete(f"asgi:group:{CHANNELS_GROUP}")
        client.close()
        await self._stats()

    async def publish_count(self, count: int, rate: float) -> list[tuple[int, int]]:
        from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]

        if self.layer is None:
            self.layer = RedisChannelLayer(hosts=[self.env["REDIS_URL"]])
        deltas = self.market.deltas()

        async def step() -> tuple[int, int]:
            self.seq += 1
            publish_ns = time.time_ns()
            text = delta_json(next(deltas), self.seq, publish_ns).decode()
            await self.layer.group_send(
                CHANNELS_GROUP, {"type": "book.delta", "text": text, "seq": self.seq, "ts": publish_ns}
            )
            return self.seq, publish_ns

        return await paced(count, rate, step)

    async def _stats(self) -> list[list[int]]:
        status, body = await asyncio.to_thread(http_get, self.port, "/bench/stats")
        if status != 200:
            raise RuntimeError(f"channels stats answered {status}")
        rows: list[list[int]] = orjson.loads(body)
        return rows

    async def server_side(self, measured: list[tuple[int, int]]) -> ServerSide:
        for seq, publish_ns, last_send_ns, sends in await self._stats():
            self.sends[seq] = (publish_ns, last_send_ns, sends)
        wanted = [self.sends[seq] for seq, _ in measured if seq in self.sends]
        return server_side_from([last - publish for publish, last, _ in wanted])

    async def after_case(self) -> None:
        # A saturated case leaves messages queued for consumers that are gone; the server would go on
        # pulling them during the next case. flush() deletes the layer's keys (groups and queues).
        if self.layer is not None:
            await self.layer.flush()

    async def close(self) -> None:
        if self.layer is not None:
            with contextlib.suppress(Exception):
                await self.layer.close_pools()
            self.layer = None


class PlatformServer(Server):
    name = "platform"
    label = "the platform (daphne, hftplatform.asgi)"

    def __init__(
        self,
        env: dict[str, str],
        cpus: set[int] | None,
        log_dir: Path,
        seed: int,
        api_key: str,
        depth: str,
        app: str = "hftplatform.asgi:application",
    ) -> None:
        super().__init__(env, cpus, log_dir, seed)
        from apps.orderbook.services.bus import RedisBus

        self.api_key = api_key
        self.depth = depth
        self.app = app
        self.redis = redis.Redis.from_url(env["REDIS_URL"])
        self.bus = RedisBus(self.redis, 100_000)
        self.deltas = self.market.deltas()
        self.slot_span_ns = 10 * 1_000_000_000
        self.measure_from_ns = 0
        self.next_free_ns = 0  # measured slots never reach back into a previous case's

    def command(self) -> list[str]:
        endpoint = f"tcp:port={self.port}:interface={HOST}:backlog={LISTEN_BACKLOG}"
        return [str(VENV_BIN / "daphne"), "-v", "0", "-e", endpoint, self.app]

    def client_plan(self, count: int) -> ClientPlan:
        return ClientPlan(
            f"ws://{HOST}:{self.port}/api/hft/ws/orderbook/{PAIR}?format=json&depth={self.depth}",
            count,
            headers=(("Authorization", f"Bearer {self.api_key}"),),
            expect_snapshot=True,
        )

    def start(self) -> None:
        self.publish_snapshot()  # the hub bootstraps from it (checkpoint and history) when daphne starts
        super().start()

    def publish_snapshot(self) -> None:
        from apps.orderbook.domain.events import SNAPSHOT
        from apps.orderbook.services.bus import unpublished

        now = time.time_ns()
        book = self.market.snapshot()
        (event,) = self.bus.publish(
            [unpublished(BOOK, SNAPSHOT, book.bids, book.asks, PRICE_EXP, SIZE_EXP, now, now, reason="reset")], now
        )
        self.bus.checkpoint(event)

    async def probe(self, timeout_s: float = 20.0) -> None:
        """One subscriber must get a snapshot; otherwise the platform stream is not there to measure."""
        plan = self.client_plan(1)
        try:
            async with (
                asyncio.timeout(timeout_s),
                connect(plan.url, additional_headers=list(plan.headers), compression=None) as ws,
            ):
                while True:
                    message = orjson.loads(await ws.recv())
                    if message.get("type") == "snapshot":
                        return
                    if message.get("type") == "error":
                        raise ServerUnavailable(f"the stream answered an error: {message}")
        except ServerUnavailable:
            raise
        except Exception as exc:
            raise ServerUnavailable(
                f"no snapshot from {plan.url} within {timeout_s:.0f} s ({type(exc).__name__}: {exc}); "
                f"is the streaming consumer routed? see {self.log_path}"
            ) from exc

    async def publish(self, warmup: int, measured: int, rate: float) -> tuple[list[tuple[int, int]], int]:
        """Warm-up deltas, then the measured ones from the next 10 s boundary: the platform's latency store
        keeps 10 s slots, so the measured slots hold measured deliveries only (see `server_side`)."""
        published = await self.publish_count(warmup, rate)
        span_ns = self.slot_span_ns
        boundary_ns = (max(time.time_ns() + 300_000_000, self.next_free_ns) // span_ns + 1) * span_ns
        # Keep the stream going until just before the boundary, so nothing of the warm-up is sent after it.
        filler = int((boundary_ns - 300_000_000 - time.time_ns()) / 1e9 * rate)
        published += await self.publish_count(max(0, filler), rate)
        await asyncio.sleep(max(0.0, (boundary_ns - time.time_ns()) / 1e9))
        self.measure_from_ns = boundary_ns
        first = len(published)
        return published + await self.publish_count(measured, rate), first

    async def publish_count(self, count: int, rate: float) -> list[tuple[int, int]]:
        from apps.orderbook.domain.events import DELTA
        from apps.orderbook.services.bus import unpublished

        async def step() -> tuple[int, int]:
            delta = next(self.deltas)
            now = time.time_ns()
            event = unpublished(BOOK, DELTA, delta.bids, delta.asks, PRICE_EXP, SIZE_EXP, now - 1_000_000, now)
            (published,) = self.bus.publish([event], time.time_ns())  # one Lua call, as a feed runner makes
            return published.seq, published.publish_ts_ns

        return await paced(count, rate, step)

    async def server_side(self, measured: list[tuple[int, int]]) -> ServerSide:
        """The stages the stream recorded for the measured slots, read from the store the endpoint reads."""
        from apps.orderbook.services import latency
        from telemetry import hdr
        from telemetry.layout import SLOT_10S, slot_key
        from telemetry.stores import RedisStore

        headers = {"Authorization": f"Bearer {self.api_key}"}
        # The endpoint flushes the process's recorder before reading: afterwards the store is complete.
        try:
            status, _ = await asyncio.to_thread(http_get, self.port, f"/api/hft/latency/{PAIR}", headers)
        except OSError as exc:
            status = f"{type(exc).__name__} {exc}"
        note = "" if status == 200 else f"GET /api/hft/latency/{PAIR} answered {status}; read after a background flush"
        if status != 200:
            await asyncio.sleep(3)
        now_ns = time.time_ns()
        first, last = SLOT_10S.index(self.measure_from_ns), SLOT_10S.index(now_ns)
        self.next_free_ns = (last + 1) * SLOT_10S.span_ns
        store = RedisStore(self.redis)
        stages: dict[str, tuple[float | None, float | None, float | None]] = {}
        counts: dict[str, int] = {}
        for stage in (latency.PUBLISH_TO_EDGE, latency.EDGE_TO_SEND, latency.PUBLISH_TO_SEND):
            series = f"{BOOK}{latency.SEPARATOR}{stage}"
            keys = [slot_key(latency.NAMESPACE, series, SLOT_10S, i) for i in range(first, last + 1)]
            merged = hdr.new_histogram()
            for blobs in store.read_slots(keys):
                hdr.merge(blobs, merged)
            stats = hdr.stats(merged)
            counts[stage] = stats.count
            stages[stage] = tuple(None if v is None else v / 1e6 for v in (stats.p50_ns, stats.p95_ns, stats.p99_ns))
        p50, p95, p99 = stages[latency.PUBLISH_TO_SEND]
        count = counts[latency.PUBLISH_TO_SEND]
        if count != len(measured):
            note = (note + "; " if note else "") + f"{count} sends recorded for {len(measured)} measured deltas"
        return ServerSide(p50, p95, p99, count, note, stages)
