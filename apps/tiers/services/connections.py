"""WebSocket connection slots per customer, counted across every server process (tier `max_ws_connections`).

With Redis, a customer's open connections are a sorted set `hft:ws:{customer_id}` of connection ids
scored by a lease expiry; each open connection renews its lease every `LEASE_MS / 3`, so a process that
dies without closing its sockets frees their slots within `LEASE_MS`. Embedded, or when Redis is down and
the policy is `local`, a per-process count stands in (the same degradation as the rate limiter).
"""

from __future__ import annotations

import threading
import uuid

import redis
from django.conf import settings

from apps.tiers.exceptions import RateLimiterUnavailable
from apps.tiers.services import redis_client

LEASE_MS = 90_000
RENEW_S = LEASE_MS / 3000

ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""


def slots_key(customer_id: int) -> str:
    return f"hft:ws:{customer_id}"


class ConnectionSlots:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[int, set[str]] = {}

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def acquire(self, customer_id: int, cap: int, connection_id: str) -> bool:
        """Take a slot (or renew this connection's); False when the customer already holds `cap`."""
        client = redis_client.get_redis()
        if client is not None and not redis_client.is_breaker_open():
            try:
                taken = client.eval(ACQUIRE_LUA, 1, slots_key(customer_id), connection_id, cap, LEASE_MS)
                return bool(taken)
            except redis.RedisError:
                redis_client.trip_breaker()
        if client is not None and settings.HFT_RATELIMIT_ON_REDIS_DOWN == "deny":
            raise RateLimiterUnavailable("Connection limits cannot be checked right now; retry shortly.")
        with self._lock:
            held = self._local.setdefault(customer_id, set())
            if connection_id in held or len(held) < cap:
                held.add(connection_id)
                return True
            return False

    def release(self, customer_id: int, connection_id: str) -> None:
        with self._lock:
            self._local.get(customer_id, set()).discard(connection_id)
        client = redis_client.get_redis()
        if client is not None and not redis_client.is_breaker_open():
            try:
                client.zrem(slots_key(customer_id), connection_id)
            except redis.RedisError:
                redis_client.trip_breaker()  # the lease expires on its own

    def reset(self) -> None:
        with self._lock:
            self._local.clear()


connection_slots = ConnectionSlots()
