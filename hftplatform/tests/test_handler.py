"""The HTTP handler: Django's middleware chain and view run in one hop, on pooled threads, concurrently."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, StreamingHttpResponse
from django.test import override_settings

from hftplatform.handler import RequestThreads, SyncChainASGIHandler, release_request_cycles
from hftplatform.tests import urls_handler

PROBE = "hftplatform.tests.urls_handler.ThreadProbeMiddleware"
ROOT = Path(__file__).resolve().parents[2]
REQUEST_GRAPH = (
    "django.http",
    "django.core",
    "django.contrib",
    "django.urls",
    "rest_framework",
    "hftplatform",
    "_asyncio",
    "builtins.traceback",
    "builtins.frame",
    "builtins.coroutine",
)


def scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def call(
    handler: SyncChainASGIHandler, path: str, *, disconnect: asyncio.Event | None = None
) -> tuple[int, dict[str, Any]]:
    """One request. The client disconnects when `disconnect` is set, or else once answered (as daphne says)."""
    messages: list[dict[str, Any]] = []
    received = False
    answered = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await (disconnect or answered).wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await handler(scope(path), receive, send)
    if not messages:
        return 0, {}
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    is_json = any(k.lower() == b"content-type" and v.startswith(b"application/json") for k, v in messages[0]["headers"])
    return messages[0]["status"], json.loads(body) if is_json else {}


@pytest.fixture
def handler(settings: Any) -> SyncChainASGIHandler:
    settings.ROOT_URLCONF = "hftplatform.tests.urls_handler"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, PROBE]
    return SyncChainASGIHandler(RequestThreads(max_idle=4))


def test_the_chain_and_the_view_run_in_one_thread_off_the_event_loop(handler: SyncChainASGIHandler) -> None:
    async def run() -> tuple[int, dict[str, Any], int]:
        status, body = await call(handler, "/where")
        return status, body, threading.get_ident()

    status, body, loop_thread = asyncio.run(run())
    assert status == 200
    assert body["thread"] == body["middleware_thread"]
    assert body["thread"] != loop_thread
    assert body["thread_name"].startswith("http-request")
    assert not asyncio.iscoroutinefunction(handler._middleware_chain)  # built as under WSGI


def test_a_thread_is_reused_by_the_next_request(handler: SyncChainASGIHandler) -> None:
    async def run() -> list[int]:
        return [(await call(handler, "/where"))[1]["thread"] for _ in range(3)]

    threads = asyncio.run(run())
    assert len(set(threads)) == 1
    assert handler.threads.idle_count == 1


def test_concurrent_requests_run_at_once_on_threads_of_their_own(handler: SyncChainASGIHandler) -> None:
    # Each view waits until all four are inside: requests funnelled through one thread would never meet.
    urls_handler.meeting["barrier"] = threading.Barrier(4)

    async def run() -> list[tuple[int, dict[str, Any]]]:
        return list(await asyncio.gather(*(call(handler, "/meet") for _ in range(4))))

    results = asyncio.run(run())
    assert [status for status, _ in results] == [200] * 4
    assert len({body["thread"] for _, body in results}) == 4
    assert handler.threads.idle_count == 4


def test_idle_threads_beyond_the_cap_end(handler: SyncChainASGIHandler) -> None:
    urls_handler.meeting["barrier"] = threading.Barrier(6)

    async def run() -> None:
        await asyncio.gather(*(call(handler, "/meet") for _ in range(6)))

    asyncio.run(run())
    assert handler.threads.idle_count == 4  # max_idle


def test_a_request_whose_client_left_finishes_its_view_before_its_thread_serves_again(
    handler: SyncChainASGIHandler,
) -> None:
    urls_handler.release.clear()
    urls_handler.held.clear()

    async def run() -> tuple[tuple[int, dict[str, Any]], tuple[int, dict[str, Any]], bool]:
        gone = asyncio.Event()
        abandoned = asyncio.create_task(call(handler, "/hold", disconnect=gone))
        assert await asyncio.to_thread(urls_handler.held.wait, 10)
        gone.set()  # the client disconnects while the view is still running
        await asyncio.sleep(0.05)
        returned_early = abandoned.done()
        urls_handler.release.set()
        left = await asyncio.wait_for(abandoned, 5)
        return left, await call(handler, "/where"), returned_early

    try:
        left, after, returned_early = asyncio.run(run())
    finally:
        urls_handler.release.set()
    assert not returned_early  # the handler waits for the view's thread...
    assert left == (0, {})  # ...and sends nothing to a client that left
    assert after[0] == 200
    assert handler.threads.idle_count == 1  # then the same thread serves the next request


def cyclic_garbage_of(handler: SyncChainASGIHandler, path: str) -> list[str]:
    """The objects one request through `handler` leaves for the garbage collector (reference cycles)."""

    async def run() -> int:
        return (await call(handler, path))[0]

    asyncio.run(run())  # warm: imports and caches
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert asyncio.run(run()) == 200
        gc.collect()
        names = [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage]
        # Only the request's own graph: a thread of an earlier test's pool may end meanwhile and leave its
        # database wrapper (a cycle of Django's own) in the same collection.
        return [name for name in names if name.startswith(REQUEST_GRAPH)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("path", ["/where", "/drf", "/drf-serializers", "/healthz"])
def test_a_finished_request_leaves_nothing_for_the_garbage_collector(handler: SyncChainASGIHandler, path: str) -> None:
    # Without `release_request_cycles` and the quiet disconnect listener, each request here left 50-100
    # objects in cycles (the request, the session, DRF's request, view and response, the tasks); the
    # serializers' fields and their parents another ~100 on /drf-serializers.
    assert cyclic_garbage_of(handler, path) == []


def test_a_streaming_response_keeps_its_request_intact() -> None:
    request = HttpRequest()
    marker = object()
    request.auser = marker
    release_request_cycles(request, StreamingHttpResponse(iter([b"x"])))
    assert request.auser is marker


def test_a_failing_view_is_a_500_and_its_thread_is_reused(handler: SyncChainASGIHandler) -> None:
    async def run() -> tuple[int, int]:
        failed, _ = await call(handler, "/boom")
        status, _ = await call(handler, "/where")
        return failed, status

    assert asyncio.run(run()) == (500, 200)
    assert handler.threads.idle_count == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the view reads on its own thread
def test_a_reused_thread_starts_each_request_without_the_last_ones_connection(
    handler: SyncChainASGIHandler,
) -> None:
    async def run() -> list[dict[str, Any]]:
        return [(await call(handler, "/database"))[1] for _ in range(2)]

    first, second = asyncio.run(run())
    assert first["thread"] == second["thread"]
    assert (first["one"], second["one"]) == (1, 1)
    # Closed at the end of the first request, as under WSGI (Postgres in CI; never for in-memory SQLite).
    assert second["was_open"] is second["keeps_connection"]


@override_settings(ROOT_URLCONF="hftplatform.tests.urls_handler")
def test_the_platform_application_serves_http_with_this_handler() -> None:
    from hftplatform.asgi import application, django_asgi_app

    assert isinstance(django_asgi_app, SyncChainASGIHandler)
    assert application.application_mapping["http"] is django_asgi_app


@pytest.mark.parametrize(("flag", "expected"), [("1", "SyncChainASGIHandler"), ("0", "ASGIHandler")])
def test_the_stock_handler_can_be_chosen_for_comparison(tmp_path: Path, flag: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="hftplatform.settings", HFT_VAR_DIR=str(tmp_path), HFT_SYNC_CHAIN_HANDLER=flag)
    probe = "import hftplatform.asgi as a; print(type(a.django_asgi_app).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
