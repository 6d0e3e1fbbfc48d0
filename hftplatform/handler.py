"""Django's HTTP side under ASGI, run the way its middleware is written: synchronously, on a reused thread.

Django's stock `ASGIHandler` costs every request two things that these small machines feel (measured in
BENCHMARKS.md, "HTTP handler"):

- **A new thread per request.** It enters `ThreadSensitiveContext()` without an executor, so asgiref
  starts a one-thread executor for the request and joins it afterwards (about 0.3 ms each time here).
- **Hand-offs inside the request.** With middleware that can run synchronously (all of ours and the
  third-party ones do), Django builds the chain around an asynchronous core: the event loop hands the
  request to the thread, the thread hands the view lookup back to the loop (`async_to_sync`), and the loop
  hands the view to the thread again, each leg a thread wake-up.

`SyncChainASGIHandler` builds the middleware chain exactly as under WSGI and runs the whole of it, view
included, in one thread-sensitive call, on a thread taken from a pool and given back afterwards (asgiref
documents reusing an executor this way). Requests still run concurrently, each on its own thread, and
database connections stay per thread as Django expects. Async views still work: Django's sync core runs
them through `async_to_sync`, as under WSGI; this project has none.

Nor does a request leave its objects in reference cycles for the garbage collector to find: the
disconnect listener returns where Django's raises (`listen_for_disconnect`), and once the response is
rendered the back-references Django and DRF set up per request are cut (`release_request_cycles`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase
from rest_framework.serializers import BaseSerializer

from apps.orderbook.drf import release_serializer

# Idle request threads kept for reuse; a burst beyond this many concurrent requests starts threads that
# end once their request is answered.
MAX_IDLE_THREADS = 64


class RequestThreads:
    """The free list. Only the event loop's thread takes and gives back, so it needs no lock."""

    def __init__(self, max_idle: int = MAX_IDLE_THREADS) -> None:
        self.max_idle = max_idle
        self._idle: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        try:
            return self._idle.pop()
        except IndexError:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="http-request")

    def give_back(self, thread: ThreadPoolExecutor) -> None:
        # Idle by now: even when the client goes away, asgiref waits for the sync call it was running.
        if len(self._idle) < self.max_idle:
            self._idle.append(thread)
        else:
            thread.shutdown(wait=False)

    @property
    def idle_count(self) -> int:
        return len(self._idle)


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self, threads: RequestThreads | None = None) -> None:
        self.threads = threads if threads is not None else RequestThreads()
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # the WSGI-shaped chain, view called directly

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self.threads.take()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(thread)

    async def listen_for_disconnect(self, receive: Any) -> None:
        """Django's, but a disconnect returns instead of raising `RequestAborted`.

        Django 5.2's `handle` only waits for this task to finish first (then cancels the request) and
        ignores `RequestAborted`. Raised, the exception is stored in the task and its traceback holds
        `handle`'s frame, whose locals hold the task: a reference cycle that keeps every request's whole
        object graph (request, response, view, session) alive until a garbage collection, which then
        frees thousands of objects at once, a pause of 5-20 ms every second or two under load.
        Returned, none of that is kept. A Django whose `handle` cancels the request only when this
        listener raises (Django's TaskGroup rewrite of `handle` works that way) would break this:
        `test_a_request_whose_client_left_finishes_its_view_...` fails if that happens under us.
        """
        try:
            await super().listen_for_disconnect(receive)
        except RequestAborted:
            return

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await sync_to_async(self._respond, thread_sensitive=True)(request)
        return response

    def _respond(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        release_request_cycles(request, response)
        return response


def release_request_cycles(request: HttpRequest, response: HttpResponseBase) -> None:
    """Break the back-references Django and DRF leave among a request's objects once it is answered.

    Left alone they make every request a reference cycle, so nothing of it is freed until a garbage
    collection frees thousands of requests' objects at once (5-20 ms with the process stopped, every second
    or two under load). Broken here, after the middleware chain has run and the response is rendered,
    everything is freed by reference counting as the request ends. The links, all of them set up per
    request and read only while the request is handled:

    - DRF: the response's `renderer_context` holds the view and the DRF request; the view holds both
      back; the DRF request's `parser_context` holds itself and the view.
    - DRF serializers: a response whose data a serializer produced (`ReturnDict`/`ReturnList`) holds it,
      and a serializer and its fields point at each other (`apps.orderbook.drf.release_serializer`; views
      release the serializers of their input themselves, with `validated`).
    - Django: a class-based view binds `head = get` on its own instance; AuthenticationMiddleware's
      `request.user` and `request.auser` close over the request; MessageMiddleware's storage holds it.

    A streaming response may still read the request while it is sent, so it is left alone.
    """
    if response.streaming:
        return
    context = getattr(response, "renderer_context", None)
    if isinstance(context, dict):
        drf_request = context.get("request")
        view = context.get("view")
        if drf_request is not None:
            drf_request.parser_context = None
        if view is not None:
            view.__dict__.pop("head", None)
        context.clear()
    serializer = getattr(getattr(response, "data", None), "serializer", None)
    if isinstance(serializer, BaseSerializer):
        release_serializer(serializer)
    attributes: dict[str, Any] = request.__dict__
    for name in ("user", "auser", "_messages"):
        attributes.pop(name, None)
