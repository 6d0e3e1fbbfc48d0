"""The engine on its own thread, reached through `engine_client()`: in-process (embedded) and over Redis,
and the dead man's switch watcher of its process.

These need committed rows (the engine's thread has its own database connection): transactional tests, with
the seeded tiers, instruments and fee schedules restored after each (`serialized_rollback`).
The Redis tests run against REDIS_URL (CI sets it) and skip without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone

from apps.orderbook.services.market import get_hub
from apps.orderbook.services.supervision import LEASE_PREFIX
from apps.orderbook.tests.feeding import wait_for_hub
from apps.orders import tasks
from apps.orders.domain.types import OrderStatus, Reason
from apps.orders.models import DeadMansSwitch, Fill, Order
from apps.orders.services.engine import engine_client
from apps.orders.services.engine.redis_transport import COMMANDS_KEY, LEASE_NAME, RedisEngineClient, run_paper_engine
from apps.orders.services.engine.runtime import InProcessEngineClient, start_runtime, stop_runtime
from apps.orders.tests.test_engine import BOOK, GRANTS, known_book, place, placed
from conftest import Persona, start_celery_worker

D = Decimal
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OperationalError:
            pass  # SQLite's shared in-memory test database: "table is locked" while the engine writes
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def embedded_engine(db: None, settings: Any) -> Iterator[None]:
    settings.HFT_PAPER_GRANTS = GRANTS
    settings.HFT_PAPER_DEADMAN_MS = 50
    known_book()
    start_runtime(get_hub())
    yield
    stop_runtime()


def test_embedded_client_executes_on_the_engine_thread_once(embedded_engine: None, alice: Persona) -> None:
    order = place(alice, "buy", "2", kind="market", tif="IOC")
    client = engine_client()
    assert isinstance(client, InProcessEngineClient)

    first = client.submit([placed(order)], timeout_s=5)[order.id]
    again = client.submit([placed(order)], timeout_s=5)[order.id]

    assert (first.status, first.average_price, len(first.fills)) == (OrderStatus.FILLED, D("100.5"), 2)
    assert again.version == first.version
    assert again.fills == first.fills  # every fill so far, none added
    assert Fill.objects.filter(order=order).count() == 2


def test_dead_mans_switch_firing_cancels_open_orders(embedded_engine: None, alice: Persona) -> None:
    resting = [place(alice, "sell", "0.5", price="105"), place(alice, "buy", "1", price="95")]
    reports = engine_client().submit([placed(o) for o in resting], timeout_s=5)
    assert {r.status for r in reports.values()} == {OrderStatus.NEW}

    DeadMansSwitch.objects.create(customer=alice.customer, fires_at=timezone.now() - timedelta(milliseconds=1))

    def all_canceled() -> bool:
        return all(o.status == "CANCELED" for o in Order.objects.filter(id__in=[o.id for o in resting]))

    wait_until(all_canceled)
    assert set(Order.objects.filter(id__in=[o.id for o in resting]).values_list("reason", flat=True)) == {
        Reason.DEAD_MANS_SWITCH.value
    }
    wait_until(lambda: DeadMansSwitch.objects.get(customer=alice.customer).fires_at is None)  # fired, disarmed


# --- Redis -------------------------------------------------------------------------------------------


@pytest.fixture
def redis_engine_env(db: None, market_redis: str, settings: Any) -> str:
    settings.HFT_PAPER_GRANTS = GRANTS
    settings.HFT_PAPER_START_GRACE_S = 2
    get_hub()
    known_book()
    wait_for_hub(BOOK, 1)
    return market_redis


class EngineThread:
    """`run_paper_engine` on a thread of the test, as `manage.py runpaper` would run it."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.result: list[str] = []
        self.thread = threading.Thread(target=lambda: self.result.append(run_paper_engine(stop=self.stop)))

    def __enter__(self) -> EngineThread:
        from apps.orderbook.services.market import redis_client

        self.thread.start()
        wait_until(lambda: bool(redis_client().exists(LEASE_PREFIX + LEASE_NAME)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_redis_client_executes_through_the_leased_engine_once(redis_engine_env: str, alice: Persona) -> None:
    client = engine_client()
    assert isinstance(client, RedisEngineClient)

    with EngineThread():
        order = place(alice, "buy", "1", price="101", tif="IOC")
        first = client.submit([placed(order)], timeout_s=5)[order.id]
        again = client.submit([placed(order)], timeout_s=5)[order.id]
        canceled = client.cancel([order.id], reason=Reason.CANCELED_BY_CUSTOMER, timeout_s=5)[order.id]

    assert (first.status, first.filled_quantity, first.fills[0].price) == (OrderStatus.FILLED, D(1), D(100))
    assert again.version == canceled.version == first.version  # neither re-executed nor canceled: it is done
    assert Fill.objects.filter(order=order).count() == 1


def test_a_command_sent_while_no_engine_runs_is_executed_once_when_it_starts(
    redis_engine_env: str, alice: Persona
) -> None:
    from apps.orderbook.services.market import redis_client

    order = place(alice, "buy", "1", kind="market", tif="IOC")
    assert engine_client().submit([placed(order)], timeout_s=0.05) == {}  # nobody answered: it stays PENDING
    assert redis_client().llen(COMMANDS_KEY) == 1

    with EngineThread():
        wait_until(lambda: redis_client().llen(COMMANDS_KEY) == 0)
        wait_until(lambda: Order.objects.get(id=order.id).status == "FILLED")

    # Reloaded as PENDING at start and then commanded again from the list: executed exactly once.
    assert Fill.objects.filter(order=order).count() == 1


def test_a_second_engine_does_not_start_while_the_lease_is_held(redis_engine_env: str) -> None:
    with EngineThread():
        assert run_paper_engine(max_seconds=0.1) == "paper engine is held elsewhere"


def test_beat_restarts_the_engine_only_when_its_lease_lapsed(
    redis_engine_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.run_paper_engine_task, "apply_async", lambda **kw: started.append(kw))

    assert tasks.supervise_paper_engine() is True
    with EngineThread():
        assert tasks.supervise_paper_engine() is False

    assert started == [{"queue": "feeds"}]


def test_runpaper_runs_for_its_seconds_and_releases_the_lease(redis_engine_env: str) -> None:
    from apps.orderbook.services.market import redis_client

    out = StringIO()
    call_command("runpaper", seconds=0.3, stdout=out)

    assert "paper engine stopped" in out.getvalue()
    assert not redis_client().exists(LEASE_PREFIX + LEASE_NAME)


def test_runpaper_refuses_without_redis(settings: Any) -> None:
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("runpaper", seconds=0.1)


@pytest.mark.redis
@pytest.mark.postgres
def test_celery_worker_on_the_feeds_queue_runs_the_leased_engine(redis_engine_env: str, alice: Persona) -> None:
    from celery import Celery

    from apps.orderbook.services.market import redis_client

    worker = start_celery_worker(redis_engine_env, queue="feeds", HFT_PAPER_DEADMAN_MS="0")
    try:
        Celery(broker=redis_engine_env).send_task(
            "apps.orders.tasks.run_paper_engine_task", kwargs={"max_seconds": 20}, queue="feeds"
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not redis_client().exists(LEASE_PREFIX + LEASE_NAME):
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            time.sleep(0.2)
        order = place(alice, "buy", "1", kind="market", tif="IOC")

        report = engine_client().submit([placed(order)], timeout_s=15)[order.id]

        assert (report.status, report.average_price) == (OrderStatus.FILLED, D(100))
        assert Fill.objects.filter(order=order).count() == 1
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_with_redis_updates_are_rendered_only_for_customers_with_an_order_socket(
    market_redis: str, settings: Any
) -> None:
    """The Redis layer's groups are read (one pipelined round trip), so neither placement nor the engine
    renders and sends updates that nobody would receive."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from apps.orders.services.updates import audience, group_name

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [market_redis]}}
    }
    layer = get_channel_layer()
    assert layer is not None
    assert audience([1, 2]) == set()
    async_to_sync(layer.group_add)(group_name(1), "specific.test!one")
    assert audience([1, 2]) == {1}
    async_to_sync(layer.group_discard)(group_name(1), "specific.test!one")
    assert audience([1, 2]) == set()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # a layer on another Redis than this process's: cannot tell
    assert audience([1, 2]) == {1, 2}
