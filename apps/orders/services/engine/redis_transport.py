"""The engine over Redis: clients RPUSH commands on one list, the engine's process BLPOPs them, executes,
and RPUSHes each reply on the command's own key, which the client BLPOPs with its timeout.

A command whose reply comes too late is not lost: the engine still executes it (once; commands are
idempotent by order id) and the reply key expires unread. The engine runs under a Redis lease, so one
process in the cluster holds the orders' state (`run_paper_engine`: `manage.py runpaper`, the Celery task).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, cast
from uuid import UUID

import orjson
import redis
from django.conf import settings

from apps.orderbook.services.market import get_hub, redis_client
from apps.orderbook.services.supervision import LEASE_PREFIX, Lease
from apps.orders.domain.types import Reason
from apps.orders.services.engine.client import EngineClient
from apps.orders.services.engine.messages import Reports
from apps.orders.services.engine.reports import ExecutionReport
from apps.orders.services.engine.runtime import EngineRuntime
from apps.orders.services.engine.state import EngineOrder, order_from_json, order_to_json

logger = logging.getLogger(__name__)
COMMANDS_KEY = "hft:paper:commands"
REPLY_PREFIX = "hft:paper:reply:"
REPLY_TTL_S = 60
LEASE_NAME = "paper-engine"


class RedisEngineClient(EngineClient):
    _shared: ClassVar[RedisEngineClient | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, client: redis.Redis, url: str = "") -> None:
        self.client = client
        self.url = url

    @classmethod
    def shared(cls) -> RedisEngineClient:
        """One client (and connection pool) per process and REDIS_URL."""
        with cls._shared_lock:
            if cls._shared is None or cls._shared.url != settings.REDIS_URL:
                cls._shared = cls(redis_client(), settings.REDIS_URL)
            return cls._shared

    def send(
        self,
        op: str,
        order_ids: Sequence[UUID],
        *,
        timeout_s: float,
        reason: Reason = Reason.CANCELED_BY_CUSTOMER,
        orders: Sequence[EngineOrder] = (),
    ) -> Reports:
        """A submit carries its orders as committed, so the engine's process need not read them back."""
        if not order_ids:
            return {}
        reply_key = REPLY_PREFIX + uuid.uuid4().hex
        command: dict[str, Any] = {
            "op": op,
            "ids": [str(i) for i in order_ids],
            "reason": reason.value,
            "reply": reply_key,
        }
        if orders:
            command["orders"], command["sent_ns"] = [order_to_json(o) for o in orders], time.time_ns()
        self.client.rpush(COMMANDS_KEY, orjson.dumps(command))
        try:
            answer = cast(Any, self.client.blpop([reply_key], timeout=max(timeout_s, 0.01)))
        except redis.TimeoutError:
            answer = None  # the socket gave up first: the same as no reply in time
        if answer is None:
            return {}
        return {UUID(k): ExecutionReport.from_json(v) for k, v in orjson.loads(answer[1]).items()}


class RedisCommandServer:
    """The engine's end: commands from Redis into the runtime's queue, replies back to each command's key."""

    def __init__(self, runtime: EngineRuntime, client: redis.Redis) -> None:
        self.runtime = runtime
        self.client = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="paper-engine-redis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                got = cast(Any, self.client.blpop([COMMANDS_KEY], timeout=1))
                backoff = 0.1
            except redis.RedisError as exc:
                logger.warning("paper engine: Redis command list unreachable (%s); retrying", exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if got is not None:
                self._dispatch(got[1])

    def _dispatch(self, raw: bytes) -> None:
        try:
            command = orjson.loads(raw)
            op, reply = command["op"], command["reply"]
            ids = [UUID(i) for i in command["ids"]]
            reason = Reason(command.get("reason", Reason.CANCELED_BY_CUSTOMER))
            if op not in {"submit", "cancel"}:
                raise ValueError(f"unknown op {op!r}")
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("paper engine: dropping a malformed command (%s)", exc)
            return
        future = self.runtime.request(op, ids, reason, _carried_orders(command, ids))
        future.add_done_callback(lambda done: self._reply(reply, done))

    def _reply(self, key: str, done: Future[Reports]) -> None:
        reports = done.result()
        payload = orjson.dumps({str(k): v.to_json() for k, v in reports.items()})
        try:
            pipe = self.client.pipeline()
            pipe.rpush(key, payload)
            pipe.expire(key, REPLY_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("paper engine: reply to %s lost (%s); the order's state is in the database", key, exc)


def _carried_orders(command: dict[str, Any], ids: list[UUID]) -> list[EngineOrder]:
    """The orders a submit carries (as placement committed them), those the command names.

    None, so that the engine reads them from the database, when they are absent or malformed, or when the
    command waited in the list longer than its sender waits for a reply (the engine was down): by then an
    order may have been executed from the database after a restart, and its PENDING copy is stale. Were
    one still stale, the engine's write would refuse it (its version check: `StaleBatch`), roll the batch
    back and reload, so an order is never executed twice.
    """
    carried = command.get("orders")
    if command["op"] != "submit" or not isinstance(carried, list):
        return []
    sent_ns = command.get("sent_ns")
    max_age_ns = int(float(getattr(settings, "HFT_PAPER_REPLY_TIMEOUT_S", 2.0)) * 1e9)
    if not isinstance(sent_ns, int) or time.time_ns() - sent_ns > max_age_ns:
        return []
    try:
        orders = [order_from_json(data) for data in carried]
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("paper engine: the orders a submit carried are malformed (%s); reading them back", exc)
        return []
    named = set(ids)
    return [order for order in orders if order.id in named]


def is_engine_running(client: redis.Redis) -> bool:
    return bool(client.exists(LEASE_PREFIX + LEASE_NAME))


def run_paper_engine(*, max_seconds: float | None = None, stop: threading.Event | None = None) -> str:
    """Hold the engine's lease and run it here (until the lease is lost, `stop` is set, or `max_seconds`)."""
    client = redis_client()
    lease = Lease(client, LEASE_NAME, settings.HFT_PAPER_LEASE_MS)
    if not lease.acquire():
        return "paper engine is held elsewhere"
    stop = stop or threading.Event()
    runtime = EngineRuntime(get_hub())
    server = RedisCommandServer(runtime, redis_client())
    runtime.start()
    server.start()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    why = "paper engine stopped"
    try:
        while deadline is None or time.monotonic() < deadline:
            if stop.wait(lease.ttl_ms / 3000):
                break
            try:
                renewed = lease.renew()
            except redis.RedisError:
                renewed = False
            if not renewed:
                why = "paper engine lease lost"
                logger.error(why)
                break
    finally:
        server.stop()
        runtime.stop()
        lease.release()
    return why
