"""The recorder: trades and metric bars into the database, in batches, by one long-lived process.

It holds the live windows (a `MicrostructureService` on its process's hub), so it is a long-lived runner
like the feed runners, not a stateless Celery task. Each second it writes the 1 s bars (metrics over 10 s)
of every book; at each whole minute the 1 m bars (over 60 s); every `HFT_MICRO_TRADE_FLUSH_S` the trades
received since (`bulk_create(ignore_conflicts=True)`: a trade written twice, after a restart, stays
one row); every minute it prunes bars past their retention. Embedded it is a thread of the embedded run;
in production `manage.py runmicro` or `run_micro_recorder_task`, held by the `microstructure` lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from apps.microstructure.models import MetricBar
from apps.microstructure.models import Trade as TradeRow
from apps.microstructure.services.live import MicrostructureService
from apps.orderbook.domain.events import Trade
from apps.orderbook.models import Instrument, Listing
from apps.orderbook.services.supervision import Lease

logger = logging.getLogger(__name__)
NS = 1_000_000_000
BAR_WINDOWS_S: dict[str, int] = {MetricBar.Interval.SECOND: 10, MetricBar.Interval.MINUTE: 60}
BAR_PLACES = Decimal(1).scaleb(-18)  # MetricBar.value's decimal places
BAR_LIMIT = Decimal(10) ** 22  # MetricBar.value's integer digits (40 - 18)
PRUNE_EVERY_NS = 60 * NS
REFERENCE_TTL_NS = 30 * NS


class ReferenceIds:
    """Instrument ids and listing exponents by (venue, symbol), reloaded at most every 30 s on a miss."""

    def __init__(self) -> None:
        self.instruments: dict[str, int] = {}
        self.listings: dict[tuple[str, str], tuple[int, int, int]] = {}  # → venue id, price exp, size exp
        self._loaded_ns = -REFERENCE_TTL_NS

    def listing(self, venue: str, symbol: str, now_ns: int) -> tuple[int, int, int] | None:
        found = self.listings.get((venue, symbol))
        if found is None and now_ns - self._loaded_ns >= REFERENCE_TTL_NS:
            self.load(now_ns)
            found = self.listings.get((venue, symbol))
        return found

    def instrument(self, symbol: str, now_ns: int) -> int | None:
        found = self.instruments.get(symbol)
        if found is None and now_ns - self._loaded_ns >= REFERENCE_TTL_NS:
            self.load(now_ns)
            found = self.instruments.get(symbol)
        return found

    def load(self, now_ns: int) -> None:
        self._loaded_ns = now_ns
        self.instruments = dict(Instrument.objects.values_list("symbol", "pk"))
        self.listings = {
            (slug, symbol): (venue_id, price_exp, size_exp)
            for slug, symbol, venue_id, price_exp, size_exp in Listing.objects.values_list(
                "venue__slug", "instrument__symbol", "venue_id", "price_exp", "size_exp"
            )
        }


class MicroRecorder:
    def __init__(self, service: MicrostructureService, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.service = service
        self.clock = clock
        self.ids = ReferenceIds()
        # Appended on the hub's thread; bounded so a long database outage costs the oldest trades, not memory.
        self._trades: deque[Trade] = deque(maxlen=settings.HFT_MICRO_TRADE_BUFFER)
        service.hub.add_trade_listener(self._trades.append)
        self._last_second: int | None = None
        self._last_flush_ns = 0
        self._last_prune_ns = 0
        self.trades_written = 0
        self.bars_written = 0

    # --- the loop -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, lease: Lease | None = None, max_seconds: float | None = None) -> str:
        """Tick at every whole second until `stop` (or the lease is lost, or `max_seconds` passed)."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        renew_every_ns = (lease.ttl_ms * 1_000_000 // 3) if lease is not None else 0
        last_renew = self.clock()
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                now = self.clock()
                stop.wait((NS - now % NS) / NS)  # to the next whole second
                if stop.is_set():
                    break
                now = self.clock()
                if lease is not None and now - last_renew >= renew_every_ns:
                    if not lease.renew():
                        return "microstructure lease lost"
                    last_renew = now
                try:
                    self.tick(now)
                except Exception:  # a database outage, or one bad book: the next second tries again
                    logger.exception("recorder: tick failed; retrying next second")
                    close_old_connections()
        finally:
            try:
                self.flush_trades(self.clock())
            except DatabaseError:
                logger.exception("recorder: the last %d trades were not written", len(self._trades))
        return "microstructure recorder stopped"

    def tick(self, now_ns: int) -> None:
        """The 1 s bars of the second that just ended, the 1 m bars at a minute boundary, trades, pruning."""
        second = now_ns // NS
        if second != self._last_second:
            self.service.tick(now_ns)  # the windows are current up to now, whatever the sampler's phase
            self.write_bars(MetricBar.Interval.SECOND, second * NS)
            if self._last_second is not None and second // 60 != self._last_second // 60:
                self.write_bars(MetricBar.Interval.MINUTE, second // 60 * 60 * NS)
            self._last_second = second
        if now_ns - self._last_flush_ns >= settings.HFT_MICRO_TRADE_FLUSH_S * NS:
            self.flush_trades(now_ns)
        if now_ns - self._last_prune_ns >= PRUNE_EVERY_NS:
            self._last_prune_ns = now_ns
            prune_metric_bars(now_ns)

    # --- trades -------------------------------------------------------------------------------------

    def flush_trades(self, now_ns: int) -> int:
        """Write the trades received since the last flush; returns how many rows were offered."""
        self._last_flush_ns = now_ns
        batch: list[Trade] = []
        while self._trades:
            batch.append(self._trades.popleft())
        try:
            # Inside the try: placing a trade may (re)load the reference ids, which fails with the database.
            rows = [row for row in (self._trade_row(t, now_ns) for t in batch) if row is not None]
            if rows:
                TradeRow.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        except DatabaseError:
            self._trades.extendleft(reversed(batch))  # kept for the next flush (the deque is bounded)
            raise
        self.trades_written += len(rows)
        return len(rows)

    def _trade_row(self, trade: Trade, now_ns: int) -> TradeRow | None:
        listing = self.ids.listing(trade.venue, trade.symbol, now_ns)
        instrument_id = self.ids.instrument(trade.symbol, now_ns)
        if listing is None or instrument_id is None:
            return None  # not in the reference data (a feed of an unknown venue): nothing to attach it to
        venue_id, price_exp, size_exp = listing
        return TradeRow(
            venue_id=venue_id,
            instrument_id=instrument_id,
            trade_id=trade.trade_id or derived_trade_id(trade),
            price=Decimal(trade.price).scaleb(-price_exp),
            qty=Decimal(trade.qty).scaleb(-size_exp),
            aggressor=trade.aggressor if trade.aggressor in ("buy", "sell") else "",
            exchange_ts_ns=trade.exchange_ts_ns,
            receive_ts_ns=trade.receive_ts_ns,
        )

    # --- bars ---------------------------------------------------------------------------------------

    def write_bars(self, interval: str, bar_ts_ns: int) -> int:
        """Every book's metrics over the interval's window ending at `bar_ts_ns`, one row per scalar."""
        window_s = BAR_WINDOWS_S[interval]
        ts = datetime.fromtimestamp(bar_ts_ns // NS, tz=UTC)
        rows: list[MetricBar] = []
        for book in self.service.books():
            venue, _, symbol = book.partition(":")
            instrument_id = self.ids.instrument(symbol, bar_ts_ns)
            if instrument_id is None:
                continue
            [result] = self.service.metrics(book, (window_s,), bar_ts_ns, use_cache=False).values()
            rows += bar_rows(instrument_id, venue, interval, ts, result.scalars().items())
        if rows:
            MetricBar.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
        self.bars_written += len(rows)
        return len(rows)


def bar_rows(
    instrument_id: int, venue: str, interval: str, ts: datetime, scalars: Iterable[tuple[str, Decimal | int | None]]
) -> list[MetricBar]:
    return [
        MetricBar(instrument_id=instrument_id, venue=venue, interval=interval, ts=ts, metric=name, value=to_column(v))
        for name, v in scalars
    ]


def to_column(value: Decimal | int | None) -> Decimal | None:
    """A value as MetricBar.value holds it (18 decimal places); None when it is not finite or too large."""
    if value is None:
        return None
    number = Decimal(value)
    if not number.is_finite() or abs(number) >= BAR_LIMIT:
        return None
    try:
        return number.quantize(BAR_PLACES)
    except InvalidOperation:
        return None


def derived_trade_id(trade: Trade) -> str:
    """An id for venues that send none (Kraken v1): the trade's own fields, so a re-delivery is one row."""
    return f"~{trade.exchange_ts_ns or trade.receive_ts_ns}:{trade.price}:{trade.qty}:{trade.aggressor}"[:64]


def prune_metric_bars(now_ns: int) -> int:
    """Delete bars older than their interval's retention (HFT_MICRO_BARS_*_KEEP_S; 0 keeps them), and trades
    older than HFT_MICRO_TRADES_KEEP_S (0 keeps them)."""
    deleted = prune_trades(now_ns)
    for interval, keep_s in (
        (MetricBar.Interval.SECOND, settings.HFT_MICRO_BARS_1S_KEEP_S),
        (MetricBar.Interval.MINUTE, settings.HFT_MICRO_BARS_1M_KEEP_S),
    ):
        if keep_s > 0:
            cutoff = datetime.fromtimestamp(now_ns // NS - keep_s, tz=UTC)
            deleted += MetricBar.objects.filter(interval=interval, ts__lt=cutoff).delete()[0]
    return deleted


def prune_trades(now_ns: int) -> int:
    keep_s = settings.HFT_MICRO_TRADES_KEEP_S
    if keep_s <= 0:
        return 0
    cutoff_ns = now_ns - keep_s * NS
    deleted = 0
    # One instrument at a time, so each delete walks the (instrument, receive_ts_ns) index.
    for instrument_id in TradeRow.objects.values_list("instrument_id", flat=True).distinct().order_by():
        deleted += TradeRow.objects.filter(instrument_id=instrument_id, receive_ts_ns__lt=cutoff_ns).delete()[0]
    return deleted
