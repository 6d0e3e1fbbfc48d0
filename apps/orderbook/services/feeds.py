"""Feed configuration: `HFT_FEEDS` (JSON) parsed into connections, with each venue's public endpoints.

`HFT_FEEDS` is a list of `{"venue": "binance", "instruments": ["BTC-USDT"], "ws_url": ..., "rest_url": ...,
"protocol": ...}`; URLs and protocol default per venue. Instruments named there that are not yet known
are created (precision from `price_decimals` / `size_decimals` in the entry, default 8). Unset, the
platform feeds from its simulated venue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from apps.orderbook.domain.events import InstrumentSpec
from apps.orderbook.domain.protocol import VenueProtocol
from apps.orderbook.exceptions import FeedConfigError

# venue → (protocol, WebSocket base URL, REST base URL)
DEFAULTS: dict[str, tuple[str, str, str]] = {
    "binance": ("binance", "wss://stream.binance.com:9443", "https://api.binance.com"),
    "binance_us": ("binance", "wss://stream.binance.us:9443", "https://api.binance.us"),
    "okx": ("okx", "wss://ws.okx.com:8443", "https://www.okx.com"),
    "kraken": ("kraken_v2", "wss://ws.kraken.com", "https://api.kraken.com"),
    "coinbase": ("coinbase_advanced", "wss://advanced-trade-ws.coinbase.com", "https://api.coinbase.com"),
    "sim": ("binance", "ws://127.0.0.1:9100", "http://127.0.0.1:9100"),
}
PROTOCOLS = ("binance", "okx", "kraken_v1", "kraken_v2", "coinbase_advanced", "coinbase_exchange")


@dataclass(frozen=True)
class FeedConfig:
    venue: str
    instruments: tuple[str, ...]
    ws_url: str
    rest_url: str
    protocol: str
    price_decimals: int = 8
    size_decimals: int = 8
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.venue}:{','.join(self.instruments)}"


def normalise_symbol(pair: str) -> str:
    """`btc/usdt`, `BTC-USDT` → `BTC-USDT`."""
    return pair.strip().upper().replace("/", "-").replace("_", "-")


def parse_feeds(raw: str | None) -> list[FeedConfig]:
    if not raw or not raw.strip():
        return []
    try:
        entries = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FeedConfigError(f"HFT_FEEDS is not valid JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise FeedConfigError("HFT_FEEDS must be a JSON list of feed entries")
    return [parse_entry(entry, i) for i, entry in enumerate(entries)]


def parse_entry(entry: Any, index: int) -> FeedConfig:
    if not isinstance(entry, dict) or not isinstance(entry.get("venue"), str):
        raise FeedConfigError(f"HFT_FEEDS[{index}]: an object with a 'venue' is required")
    venue = entry["venue"]
    instruments = entry.get("instruments")
    if not isinstance(instruments, list) or not instruments or not all(isinstance(i, str) for i in instruments):
        raise FeedConfigError(f"HFT_FEEDS[{index}]: 'instruments' must be a non-empty list of symbols")
    default = DEFAULTS.get(venue)
    protocol = entry.get("protocol") or (default[0] if default else None)
    if protocol not in PROTOCOLS:
        raise FeedConfigError(f"HFT_FEEDS[{index}]: unknown venue {venue!r}; give 'protocol' (one of {PROTOCOLS})")
    ws_url = entry.get("ws_url") or (default[1] if default else None)
    rest_url = entry.get("rest_url") or (default[2] if default else None)
    if not ws_url or not rest_url:
        raise FeedConfigError(f"HFT_FEEDS[{index}]: 'ws_url' and 'rest_url' are required for venue {venue!r}")
    known = {"venue", "instruments", "ws_url", "rest_url", "protocol", "price_decimals", "size_decimals"}
    return FeedConfig(
        venue=venue,
        instruments=tuple(normalise_symbol(i) for i in instruments),
        ws_url=ws_url.rstrip("/"),
        rest_url=rest_url.rstrip("/"),
        protocol=protocol,
        price_decimals=int(entry.get("price_decimals", 8)),
        size_decimals=int(entry.get("size_decimals", 8)),
        options={k: v for k, v in entry.items() if k not in known},
    )


def default_venue_symbol(protocol: str, symbol: str) -> str:
    base, _, quote = symbol.partition("-")
    if protocol == "binance":
        return f"{base}{quote}"
    if protocol.startswith("kraken"):
        return f"{'XBT' if base == 'BTC' and protocol == 'kraken_v1' else base}/{quote}"
    return symbol


def make_protocol(config: FeedConfig, specs: list[InstrumentSpec]) -> VenueProtocol:
    if config.protocol == "binance":
        from apps.orderbook.domain.venues.binance import BinanceProtocol

        return BinanceProtocol(specs, venue=config.venue, **config.options)
    if config.protocol == "okx":
        from apps.orderbook.domain.venues.okx import OKXProtocol

        return OKXProtocol(specs, venue=config.venue, **config.options)
    if config.protocol == "kraken_v1":
        from apps.orderbook.domain.venues.kraken import KrakenV1Protocol

        return KrakenV1Protocol(specs, venue=config.venue, **config.options)
    if config.protocol == "kraken_v2":
        from apps.orderbook.domain.venues.kraken import KrakenV2Protocol

        return KrakenV2Protocol(specs, venue=config.venue, **config.options)
    if config.protocol == "coinbase_advanced":
        from apps.orderbook.domain.venues.coinbase import CoinbaseAdvancedProtocol

        return CoinbaseAdvancedProtocol(specs, venue=config.venue, **config.options)
    from apps.orderbook.domain.venues.coinbase import CoinbaseExchangeProtocol

    return CoinbaseExchangeProtocol(specs, venue=config.venue, **config.options)
