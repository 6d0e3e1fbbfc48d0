"""Headless Chromium loads the JavaScript stream client as the platform serves it, decodes frames and streams."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page
from websockets.sync.server import Server, ServerConnection, serve

from apps.orderbook.domain import binary
from apps.orderbook.domain.events import DELTA, SNAPSHOT
from hftplatform.tests.test_pages_browser import CHROMIUM, carol, live_server_daphne, page

__all__ = ["carol", "live_server_daphne", "page"]  # fixtures, shared with the page tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

CLIENT_URL = "/static/hftclient/hftclient.js"
TS = 1732400000224100000
HEX_TO_BYTES = "(hex) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16))"


def book(kind: str, seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]], reason: str = "") -> bytes:
    """Consolidated BTC-USDT (instrument 1) at 2 price and 8 size decimals."""
    return binary.encode_book(kind, 1, 0, seq, 2, 8, None, TS - 1000, TS, bids, asks, reason=reason)


def test_browser_decodes_binary_frames_into_exact_decimal_strings_and_keeps_a_book(page: Page) -> None:
    frames = [
        book(SNAPSHOT, 2**63 + 5, [(6732112, 50000000)], [(6732113, 2**63 - 1)], reason="subscribe"),
        book(DELTA, 2**63 + 6, [(6732112, 0), (6732050, 25000000)], []),
        book(DELTA, 2**63 + 8, [(6732000, 1)], []),
        binary.encode_trade(1, 3, "T-1", 6732112, 1500000, "sell", None, TS, 2, 8),
    ]
    page.goto("/")
    result = page.evaluate(
        f"""async ([url, frames]) => {{
            const client = await import(url);
            const bytes = {HEX_TO_BYTES};
            const book = new client.LocalBook("consolidated:BTC-USDT");
            const messages = frames.map((hex) => client.decodeBinary(bytes(hex).buffer));
            const applied = messages.slice(0, 3).map((message) => book.apply(message));
            return {{
                applied,
                snapshot: messages[0],
                sequence: book.sequence.toString(),
                gap: [book.gap.expected.toString(), book.gap.received.toString()],
                bids: book.bidLevels(),
                asks: book.askLevels(),
                trade: [messages[3].price, messages[3].size, messages[3].aggressor, messages[3].exchangeTimestamp],
                timestamp: messages[0].timestamp.toString(),
            }};
        }}""",
        [CLIENT_URL, [frame.hex() for frame in frames]],
    )
    assert result["applied"] == [True, True, False]
    assert result["sequence"] == str(2**63 + 6)  # a u64 past 2**63, exact
    assert result["gap"] == [str(2**63 + 7), str(2**63 + 8)]
    assert result["bids"] == [["67320.5", "0.25"]]
    assert result["asks"] == [["67321.13", "92233720368.54775807"]]
    assert result["timestamp"] == str(TS)
    assert result["trade"] == ["67321.12", "0.015", "sell", None]


class ScriptedStream:
    """A loopback WebSocket server in a thread that plays one book to the browser and expects a resync."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.ops: list[dict[str, Any]] = []
        self.server: Server = serve(self.handle, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"

    def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        ws.send(
            json.dumps(
                {
                    "type": "subscribed",
                    "id": None,
                    "pair": "BTC-USDT",
                    "venue": "consolidated",
                    "book": "consolidated:BTC-USDT",
                    "instrument_id": 1,
                    "venue_id": 0,
                    "depth": 20,
                    "depth_capped": False,
                    "price_decimals": 2,
                    "size_decimals": 8,
                    "format": "binary",
                }
            )
        )
        ws.send(book(SNAPSHOT, 10, [(10000, 100000000)], [(10100, 200000000)], reason="subscribe"))
        ws.send(book(DELTA, 11, [(10000, 0), (9900, 300000000)], []))
        ws.send(book(DELTA, 13, [(9800, 1)], []))  # 12 is missing
        self.ops.append(json.loads(ws.recv(timeout=10)))
        ws.send(book(SNAPSHOT, 13, [(9700, 100000000)], [(10100, 200000000)], reason="resync"))
        ws.send(binary.encode_heartbeat(1, 0, 13, TS))
        for _ in ws:  # until the browser closes
            pass


@pytest.fixture
def scripted_stream() -> Iterator[ScriptedStream]:
    stream = ScriptedStream()
    thread = threading.Thread(target=stream.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stream
    finally:
        stream.server.shutdown()
        thread.join(timeout=10)


def test_browser_connect_sends_the_key_in_the_url_and_resyncs_after_a_gap(
    page: Page, scripted_stream: ScriptedStream
) -> None:
    page.goto("/")
    result = page.evaluate(
        """async ([url, base]) => {
            const client = await import(url);
            return await new Promise((resolve, reject) => {
                const seen = [];
                const stream = client.connect({
                    url: base,
                    apiKey: "alice key",
                    format: "binary",
                    subscriptions: [{ pair: "BTC/USDT", depth: 20 }],
                    onUpdate: ({ message, book, latencyNs }) => {
                        seen.push([message.type, message.sequence?.toString() ?? null, book?.isInSync ?? null]);
                        if (message.type === "heartbeat") {
                            stream.close();
                            resolve({ seen, bids: book.bidLevels(), latencyIsBigInt: typeof latencyNs === "bigint" });
                        }
                    },
                    onClose: ({ code }) => reject(new Error(`closed with ${code}`)),
                });
                setTimeout(() => reject(new Error(`timed out after ${JSON.stringify(seen)}`)), 10000);
            });
        }""",
        [CLIENT_URL, scripted_stream.url],
    )
    assert scripted_stream.paths == [
        "/api/hft/ws/orderbook/BTC%2FUSDT?format=binary&venue=consolidated&depth=20&api_key=alice+key"
    ]
    assert [{k: op[k] for k in ("op", "pair", "venue")} for op in scripted_stream.ops] == [
        {"op": "resync", "pair": "BTC-USDT", "venue": "consolidated"}
    ]
    assert result["seen"] == [
        ["subscribed", None, None],
        ["snapshot", "10", True],
        ["delta", "11", True],
        ["delta", "13", False],
        ["snapshot", "13", True],
        ["heartbeat", "13", True],
    ]
    assert result["bids"] == [["97", "1"]]
    assert result["latencyIsBigInt"] is True
