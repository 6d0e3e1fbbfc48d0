"""Per-process wiring of market data: the bus, the hub, and feed runners built from the database.

Embedded (no REDIS_URL) the feed runner and the hub share one in-process bus; with Redis, web processes
hold a hub fed by one Redis subscription and feed runners publish through Redis.
"""

from __future__ import annotations

import threading
import time

import redis
from django.conf import settings
from django.db import transaction

from apps.orderbook.domain.events import InstrumentSpec
from apps.orderbook.models import Instrument, Listing, Venue
from apps.orderbook.services.bus import InProcessBus, MarketDataBus, RedisBus
from apps.orderbook.services.feeds import DEFAULTS, FeedConfig, default_venue_symbol, make_protocol, parse_feeds
from apps.orderbook.services.hub import MarketDataHub, RedisHubListener
from apps.orderbook.services.latency import record_book_event
from apps.orderbook.services.publisher import FeedPublisher, Precision
from apps.orderbook.services.runner import FeedRunner, VenueConnection

_lock = threading.Lock()
_bus: MarketDataBus | None = None
_hub: MarketDataHub | None = None
_listener: RedisHubListener | None = None


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, health_check_interval=30)


def get_bus() -> MarketDataBus:
    global _bus
    with _lock:
        if _bus is None:
            if settings.REDIS_URL:
                _bus = RedisBus(redis_client(), settings.HFT_DELTA_HISTORY)
            else:
                _bus = InProcessBus(settings.HFT_DELTA_HISTORY)
        return _bus


def get_hub() -> MarketDataHub:
    """The process's hub, subscribed on first use."""
    global _hub, _listener
    bus = get_bus()
    with _lock:
        if _hub is None:
            _hub = MarketDataHub(bus)
            _hub.add_listener(record_book_event)  # latency stages, recorded in memory (no I/O here)
            if isinstance(bus, InProcessBus):
                bus.subscribe(_hub.on_event)
                bus.subscribe_trades(_hub.on_trade)
                _hub.bootstrap()  # books published before the first reader asked
            else:
                _listener = RedisHubListener(_hub, redis_client())
                _listener.start()
                _listener.is_subscribed.wait(timeout=5)
        return _hub


def reset_market() -> None:
    """Forget the bus and hub (tests)."""
    global _bus, _hub, _listener
    with _lock:
        if _listener is not None:
            _listener.stop()
        _bus, _hub, _listener = None, None, None


def configured_feeds() -> list[FeedConfig]:
    """HFT_FEEDS, or the simulated venue's default feed when it is unset."""
    feeds = parse_feeds(settings.HFT_FEEDS)
    if feeds:
        return feeds
    _, ws, rest = DEFAULTS["sim"]
    host = f"127.0.0.1:{settings.HFT_SIM_PORT}"
    return [
        FeedConfig(
            venue="sim",
            instruments=tuple(settings.HFT_SIM_SYMBOLS),
            ws_url=ws.replace("127.0.0.1:9100", host),
            rest_url=rest.replace("127.0.0.1:9100", host),
            protocol="binance",
        )
    ]


@transaction.atomic
def ensure_listings(config: FeedConfig) -> list[Listing]:
    """The listings of a feed's instruments, creating venue, instruments and listings not yet known."""
    venue, _ = Venue.objects.get_or_create(
        slug=config.venue, defaults={"name": config.venue.replace("_", " ").title(), "protocol": config.protocol}
    )
    listings = []
    for symbol in config.instruments:
        base, _, quote = symbol.partition("-")
        instrument, _ = Instrument.objects.get_or_create(
            symbol=symbol,
            defaults={
                "base": base,
                "quote": quote.partition("-")[0] or quote,
                "price_exp": config.price_decimals,
                "size_exp": config.size_decimals,
            },
        )
        listing = Listing.objects.filter(venue=venue, instrument=instrument).first()
        if listing is None:
            listing = Listing.objects.create(
                venue=venue,
                instrument=instrument,
                venue_symbol=default_venue_symbol(config.protocol, symbol),
                price_exp=config.price_decimals,
                size_exp=config.size_decimals,
            )
            if config.price_decimals > instrument.price_exp or config.size_decimals > instrument.size_exp:
                instrument.price_exp = max(instrument.price_exp, config.price_decimals)
                instrument.size_exp = max(instrument.size_exp, config.size_decimals)
                instrument.save(update_fields=["price_exp", "size_exp"])
        listings.append(listing)
    return listings


def build_runner(
    feeds: list[FeedConfig], bus: MarketDataBus | None = None, *, consolidate: bool = True
) -> tuple[FeedRunner, FeedPublisher]:
    """One runner and publisher for these feeds; instrument precision from the database."""
    per_feed = [(config, ensure_listings(config)) for config in feeds]
    listings = {
        (config.venue, listing.instrument.symbol): Precision(listing.price_exp, listing.size_exp)
        for config, feed_listings in per_feed
        for listing in feed_listings
    }
    symbols = {symbol for _, symbol in listings}
    instruments = {i.symbol: Precision(i.price_exp, i.size_exp) for i in Instrument.objects.filter(symbol__in=symbols)}
    publisher = FeedPublisher(bus or get_bus(), listings, instruments, time.time_ns, consolidate=consolidate)
    connections = []
    for config, feed_listings in per_feed:
        specs = [InstrumentSpec(x.instrument.symbol, x.venue_symbol, x.price_exp, x.size_exp) for x in feed_listings]
        connections.append(
            VenueConnection(config.name, make_protocol(config, specs), config.ws_url, config.rest_url, publisher)
        )
    return FeedRunner(connections), publisher
