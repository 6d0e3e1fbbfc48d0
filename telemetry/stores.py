"""Where flushed histograms and counters live: this process's memory (embedded) or Redis (all processes).

A flush writes a `Batch`: each changed slot histogram under the process's own field of the slot's hash
(so processes never overwrite one another and a reader sums the fields), and increments of the
cluster-wide Prometheus counters. Embedded there is one process, so memory is the whole truth.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis

from telemetry.layout import COUNTERS_LEN, COUNTERS_TTL_S, NS_PER_S, counters_key, series_key


@dataclass(slots=True)
class Batch:
    namespace: str
    process_id: str
    now_ns: int
    histograms: list[tuple[str, bytes, int]] = field(default_factory=list)  # (slot key, encoding, ttl s)
    counters: dict[str, list[int]] = field(default_factory=dict)  # series → increments (layout.COUNTERS_LEN)

    def is_empty(self) -> bool:
        return not self.histograms and not self.counters


class Store(Protocol):
    def apply(self, batch: Batch) -> None: ...

    def read_slots(self, keys: Sequence[str]) -> list[list[bytes]]:
        """Each key's encodings, one per process that wrote it (empty when none did)."""
        ...

    def read_counters(self, namespace: str) -> dict[str, list[int]]: ...

    def hold_lease(self, key: str, owner: str, ttl_s: int) -> bool:
        """Take or keep a lease that one process at a time holds."""
        ...


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[int, dict[str, bytes]]] = {}  # key → (expires at ns, process → encoding)
        self._counters: dict[str, dict[str, list[int]]] = {}  # namespace → series → counters

    def apply(self, batch: Batch) -> None:
        with self._lock:
            for key, blob, ttl_s in batch.histograms:
                _, fields = self._slots.get(key, (0, {}))
                fields[batch.process_id] = blob
                self._slots[key] = (batch.now_ns + ttl_s * NS_PER_S, fields)
            counters = self._counters.setdefault(batch.namespace, {})
            for series, increments in batch.counters.items():
                total = counters.setdefault(series, [0] * COUNTERS_LEN)
                for i, value in enumerate(increments):
                    total[i] += value
            self._slots = {k: v for k, v in self._slots.items() if v[0] > batch.now_ns}

    def read_slots(self, keys: Sequence[str]) -> list[list[bytes]]:
        with self._lock:
            return [list(self._slots.get(key, (0, {}))[1].values()) for key in keys]

    def read_counters(self, namespace: str) -> dict[str, list[int]]:
        with self._lock:
            return {series: list(c) for series, c in self._counters.get(namespace, {}).items()}

    def hold_lease(self, key: str, owner: str, ttl_s: int) -> bool:
        return True  # one process

    def clear(self, namespace: str) -> None:
        with self._lock:
            self._slots = {k: v for k, v in self._slots.items() if not k.startswith(f"{namespace}:")}
            self._counters.pop(namespace, None)


# Take the lease if it is free, or extend it if it is ours, in one step.
LEASE_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('EXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""


class RedisStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lease = client.register_script(LEASE_SCRIPT)

    def apply(self, batch: Batch) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, blob, ttl_s in batch.histograms:
            pipe.hset(key, batch.process_id, blob)
            pipe.expire(key, ttl_s)
        for series, increments in batch.counters.items():
            key = counters_key(batch.namespace, series)
            for i, value in enumerate(increments):
                if value:
                    pipe.hincrby(key, str(i), value)
            pipe.expire(key, COUNTERS_TTL_S)
            pipe.sadd(series_key(batch.namespace), series)
        if batch.counters:
            pipe.expire(series_key(batch.namespace), COUNTERS_TTL_S)
        pipe.execute()

    def read_slots(self, keys: Sequence[str]) -> list[list[bytes]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hvals(key)
        return [list(values) for values in pipe.execute()]

    def read_counters(self, namespace: str) -> dict[str, list[int]]:
        names = sorted(m.decode() for m in self.client.smembers(series_key(namespace)))  # type: ignore[union-attr]
        pipe = self.client.pipeline(transaction=False)
        for series in names:
            pipe.hgetall(counters_key(namespace, series))
        counters: dict[str, list[int]] = {}
        for series, fields in zip(names, pipe.execute(), strict=True):
            if fields:
                values = [0] * COUNTERS_LEN
                for name, value in fields.items():
                    values[int(name)] = int(value)
                counters[series] = values
        return counters

    def hold_lease(self, key: str, owner: str, ttl_s: int) -> bool:
        return bool(self._lease(keys=[key], args=[owner, ttl_s]))


_lock = threading.Lock()
_memory = MemoryStore()
_redis_stores: dict[str, RedisStore] = {}


def memory_store() -> MemoryStore:
    return _memory


def store_for_url(url: str) -> Store:
    """The process's store: memory without a Redis URL, else one Redis store (and client) per URL."""
    if not url:
        return _memory
    store = _redis_stores.get(url)
    if store is None:
        with _lock:
            store = _redis_stores.get(url)
            if store is None:
                client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
                store = _redis_stores[url] = RedisStore(client)
    return store
