"""`manage.py simvenue`: serve a simulated Binance spot market on a local port until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.orderbook.simvenue import SimulatedVenue

DEFAULT_SYMBOLS = "BTCUSDT=65000.00,ETHUSDT=3500.00"


def parse_symbols(text: str) -> dict[str, str]:
    """Read "BTCUSDT=65000.00,ETHUSDT=3500.00" into {symbol: start mid}; the decimals written set the tick."""
    symbols: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        symbol, sep, mid = item.partition("=")
        try:
            is_valid = bool(sep) and symbol.isalnum() and Decimal(mid) > 0
        except InvalidOperation:
            is_valid = False
        if not is_valid:
            raise CommandError(f"--symbols: expected SYMBOL=MID such as BTCUSDT=65000.00, got {item!r}")
        symbols[symbol.upper()] = mid
    if not symbols:
        raise CommandError("--symbols: no symbol given")
    return symbols


class Command(BaseCommand):
    help = "Serve a simulated Binance spot venue (REST depth, depth diffs, bookTicker, aggTrade) until Ctrl-C."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
        parser.add_argument("--symbols", default=DEFAULT_SYMBOLS, help="SYMBOL=START_MID,...")
        parser.add_argument("--rate", type=float, default=500.0, help="order-book actions per second per symbol")
        parser.add_argument("--seed", type=int, default=None, help="replay the same market (default: random)")

    def handle(self, *args: Any, **options: Any) -> None:
        symbols = parse_symbols(options["symbols"])
        if options["rate"] < 0:
            raise CommandError("--rate must not be negative")
        venue = SimulatedVenue(symbols, rate_per_s=options["rate"], seed=options["seed"])
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve(venue, options["host"], options["port"]))
        counters = venue.counters
        self.stdout.write(
            f"stopped: {counters.actions} actions, {counters.updates} book updates, {counters.trades} trades, "
            f"{counters.frames_sent} frames sent"
        )

    async def _serve(self, venue: SimulatedVenue, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        real_port = await venue.start(host, port)
        try:
            self._print_urls(venue, host, real_port)
            await stop.wait()
        finally:
            await venue.stop()

    def _print_urls(self, venue: SimulatedVenue, host: str, port: int) -> None:
        base = f"{host}:{port}"
        self.stdout.write(f"simulated Binance spot venue, seed {venue.seed}, {venue.rate_per_s:g} actions/s per symbol")
        self.stdout.write(f"  REST  http://{base}/api/v3/exchangeInfo")
        for symbol in venue.symbols:
            low = symbol.lower()
            self.stdout.write(f"  REST  http://{base}/api/v3/depth?symbol={symbol}&limit=1000")
            self.stdout.write(f"  WS    ws://{base}/stream?streams={low}@depth@100ms/{low}@bookTicker/{low}@aggTrade")
        self.stdout.write("Ctrl-C to stop.")
        self.stdout.flush()
