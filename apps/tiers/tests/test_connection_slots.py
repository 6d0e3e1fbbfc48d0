"""WebSocket connection slots per customer: the cap holds across processes (Redis) and in process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.tiers.services import connections
from apps.tiers.services.connections import ConnectionSlots


def test_a_customer_holds_at_most_cap_slots_and_released_slots_free_up(backend: str) -> None:
    slots = ConnectionSlots()
    ids = [slots.new_id() for _ in range(3)]
    assert slots.acquire(7, 2, ids[0])
    assert slots.acquire(7, 2, ids[1])
    assert not slots.acquire(7, 2, ids[2])
    assert slots.acquire(7, 2, ids[1]), "renewing a held slot is not a new connection"
    assert slots.acquire(8, 2, ids[2]), "another customer's slots are separate"
    slots.release(7, ids[0])
    assert slots.acquire(7, 2, ids[2])


def test_two_processes_share_the_cap_through_redis(use_redis: str) -> None:
    first, second = ConnectionSlots(), ConnectionSlots()
    assert first.acquire(9, 1, first.new_id())
    assert not second.acquire(9, 1, second.new_id())


def test_a_dead_process_slots_expire_with_their_lease(use_redis: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(connections, "LEASE_MS", 200)
    slots = ConnectionSlots()
    assert slots.acquire(10, 1, "crashed-process-connection")
    assert not slots.acquire(10, 1, "new")
    time.sleep(0.3)
    assert ConnectionSlots().acquire(10, 1, "new")


def test_redis_down_follows_the_limiter_policy(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "local"
    slots = ConnectionSlots()
    assert slots.acquire(11, 1, "a")
    assert not slots.acquire(11, 1, "b")
    settings.HFT_RATELIMIT_ON_REDIS_DOWN = "deny"
    connections.redis_client.reset_client()
    with pytest.raises(connections.RateLimiterUnavailable):
        slots.acquire(11, 1, "c")
