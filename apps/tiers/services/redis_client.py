"""The process's Redis client for limits, usage and invalidation, with short timeouts and a breaker.

A down Redis must not stall every request for a connect timeout: after a failure the breaker keeps
callers off Redis for `BREAKER_OPEN_S`, during which they take their documented fallback.
"""

from __future__ import annotations

import threading
import time

import redis
from django.conf import settings

BREAKER_OPEN_S = 1.0
_lock = threading.Lock()
_client: redis.Redis | None = None
_open_until = 0.0


def get_redis() -> redis.Redis | None:
    """The shared client, or None when the platform runs without Redis."""
    global _client
    if not settings.REDIS_URL:
        return None
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
                )
    return _client


def is_breaker_open() -> bool:
    return time.monotonic() < _open_until


def trip_breaker() -> None:
    global _open_until
    _open_until = time.monotonic() + BREAKER_OPEN_S


def reset_client() -> None:
    """Forget the client and close the breaker (tests, and after settings change)."""
    global _client, _open_until
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
        _open_until = 0.0
