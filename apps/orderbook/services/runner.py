"""The asyncio shell around the pure venue protocols: WebSocket and REST I/O, reconnects, back-off, ticks.

One `FeedRunner` class serves the embedded process, `manage.py runfeeds` and the Celery task. Each
connection feeds its protocol frames and REST answers with receive times, and hands what comes out to
the publisher; `Reconnect` closes the socket and opens it again after an exponential back-off.

A publish that fails (the bus is down) does not stop the connection: the publisher has kept what it
could not publish and re-publishes each book as a snapshot first thing once the bus takes events again;
the runner asks it to every second (`FeedPublisher.maintain`), so a quiet book is not left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from apps.orderbook.domain.protocol import Fetch, Output, Reconnect, Send, VenueProtocol
from apps.orderbook.services.publisher import FeedPublisher, PublishFailed

logger = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a Coinbase level2 snapshot can be 5 MB
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 30.0
MAINTAIN_EVERY_S = 1.0


def join_url(base: str, path_and_query: str) -> str:
    """The protocol's path on the configured base; the base's own query (e.g. replay `conn=`) is kept."""
    b = urlsplit(base)
    p = urlsplit(path_and_query)
    path = (b.path.rstrip("/") + p.path) if p.path else b.path
    query = urlencode([*parse_qsl(b.query), *parse_qsl(p.query)], safe="@/,")
    return urlunsplit((b.scheme, b.netloc, path or "/", query, ""))


class VenueConnection:
    def __init__(
        self,
        name: str,
        protocol: VenueProtocol,
        ws_url: str,
        rest_url: str,
        publisher: FeedPublisher,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.name = name
        self.protocol = protocol
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.publisher = publisher
        self.clock = clock
        self.connects = 0
        self.messages = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = BACKOFF_MIN_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
            self._session = session
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await self._session_once(session, stop)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    logger.warning("%s: connection failed: %s", self.name, exc)
                finally:
                    self._ws = None
                    self._dispatch(self.protocol.on_close(self.clock()))
                if time.monotonic() - started > 60:
                    backoff = BACKOFF_MIN_S  # it was up for a while: this is a fresh failure
                if stop.is_set():
                    break
                delay = backoff * (0.5 + random.random())
                logger.info("%s: reconnecting in %.2f s", self.name, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            for task in list(self._tasks):
                task.cancel()

    async def _session_once(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        url = join_url(self.ws_url, self.protocol.ws_path())
        async with session.ws_connect(url, heartbeat=20, max_msg_size=MAX_MESSAGE_BYTES, autoping=True) as ws:
            self._ws = ws
            self.connects += 1
            logger.info("%s: connected to %s", self.name, url)
            self._dispatch(self.protocol.on_open(self.clock()))
            ticker = asyncio.create_task(self._tick(ws))
            stopper = asyncio.create_task(self._close_on(stop, ws))
            try:
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        self.messages += 1
                        self._dispatch(self.protocol.on_message(message.data, self.clock()))
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        self.messages += 1
                        self._dispatch(self.protocol.on_message(message.data.decode(), self.clock()))
                    elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
            finally:
                ticker.cancel()
                stopper.cancel()

    async def _close_on(self, stop: asyncio.Event, ws: aiohttp.ClientWebSocketResponse) -> None:
        await stop.wait()
        await ws.close()

    async def _tick(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(1)
            self._dispatch(self.protocol.on_tick(self.clock()))

    def _dispatch(self, outputs: list[Output]) -> None:
        platform: list[Output] = []
        for output in outputs:
            if isinstance(output, Send):
                self._spawn(self._send(output.text))
            elif isinstance(output, Fetch):
                self._spawn(self._fetch(output))
            elif isinstance(output, Reconnect):
                logger.warning("%s: reconnect: %s", self.name, output.reason)
                if self._ws is not None:
                    self._spawn(self._ws.close())
            else:
                platform.append(output)
        if platform:
            try:
                self.publisher.handle(platform)
            except PublishFailed as exc:
                logger.warning(
                    "%s: publish failed (%s); the books are re-published once the bus is back", self.name, exc
                )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, text: str) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(text)

    async def _fetch(self, fetch: Fetch) -> None:
        assert self._session is not None
        url = join_url(self.rest_url, fetch.path)
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as response:
                body = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            logger.warning("%s: GET %s failed: %s", self.name, url, exc)
            status, body = 599, ""
        self._dispatch(self.protocol.on_rest(fetch.key, status, body, self.clock()))


class FeedRunner:
    """Runs a set of venue connections into one publisher until stopped."""

    def __init__(self, connections: list[VenueConnection]) -> None:
        self.connections = connections
        self.stop_event: asyncio.Event | None = None

    async def run(self) -> None:
        self.stop_event = asyncio.Event()
        maintainer = asyncio.ensure_future(self._maintain(self.stop_event))
        try:
            await asyncio.gather(*(c.run(self.stop_event) for c in self.connections))
        finally:
            maintainer.cancel()

    async def _maintain(self, stop: asyncio.Event) -> None:
        """Every second: let each publisher re-publish what a bus failure or a Redis restart left behind."""
        publishers = list({id(c.publisher): c.publisher for c in self.connections}.values())
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=MAINTAIN_EVERY_S)
            for publisher in publishers:
                try:
                    publisher.maintain()
                except PublishFailed as exc:
                    logger.warning("feed runner: re-publishing failed (%s); retrying", exc)

    def request_stop(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()
