"""Live microstructure windows of one process: trades and top-of-book samples per book, fed from the hub.

Every web process (and the recorder) holds one `MicrostructureService` attached to its `MarketDataHub`.
The hub calls the trade listener on its own thread, which must never wait, so a trade is only appended
to a deque there; the sampler thread (every `HFT_MICRO_SAMPLE_MS`) reads each book's top from the hub's
replica, moves the pending trades into the windows and evicts what is older than `HFT_MICRO_KEEP_S`.
Readers compute under the same lock, and share a result for `HFT_MICRO_CACHE_MS`. Nothing here touches
the ORM: the books' exponents come from the hub's replicas. With Redis, a new service first loads the
last 5 minutes of trades from the bus's trade streams, so a web process that starts (or is first asked)
after the market did serves full trade windows at once; top-of-book samples start with the service.

Scales: a venue book and its trades are both at the venue listing's exponents; the consolidated book is
at the instrument's (the finest of its venues'), so trades are rescaled to it before they join its window.
Trades are stamped with our receive time, the clock the samples use, so "the book before a trade" means
the book as this platform knew it when the trade arrived (venue clocks differ from ours by the latency).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
from django.conf import settings

from apps.microstructure.domain.metrics import MetricsParams, MetricsResult, compute_all_windows
from apps.microstructure.domain.types import BookLevels, Scale, TopSample, TradeTick
from apps.microstructure.domain.window import MarketWindow
from apps.orderbook.domain.events import Trade, book_id
from apps.orderbook.services.bus import RedisBus
from apps.orderbook.services.hub import MarketDataHub
from apps.orderbook.services.market import get_hub
from apps.orderbook.services.publisher import CONSOLIDATED

logger = logging.getLogger(__name__)
NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class LiveSettings:
    sample_interval_ns: int
    keep_ns: int
    depth: int  # levels per side read for depth metrics
    cache_ns: int


class MicrostructureService:
    def __init__(
        self,
        hub: MarketDataHub,
        config: LiveSettings,
        *,
        params: MetricsParams | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.hub = hub
        self.config = config
        self.params = params or MetricsParams(sample_interval_ns=config.sample_interval_ns)
        self.clock = clock
        self._pending: deque[Trade] = deque()  # appended by the hub's thread, drained by `tick`
        self._windows: dict[str, MarketWindow] = {}
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int], MetricsResult] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trades_seen = 0
        self.trades_unplaced = 0  # trades whose book this process has not seen (no scale to place them at)
        # Since when this process has every trade: its first tick (the listener is added just before), or as
        # far back as it preloaded.
        self.started_ns: int | None = None
        self._trades_since: dict[str, int] = {}  # by symbol, where a preload reached further back
        # Preloaded trades by key, True once placed: the live copy of one can still arrive after the preload
        # (published just before the listener was added, delivered just after), and is then dropped.
        self._preloaded: dict[tuple[str, str, str, int], bool] = {}
        self._preloaded_until_ns = 0  # after this (the newest preloaded trade + PRELOAD_OVERLAP_NS), forgotten
        hub.add_trade_listener(self._pending.append)

    # --- feeding ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="microstructure-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        interval_s = self.config.sample_interval_ns / 1e9
        while not self._stop.wait(interval_s):
            try:
                self.tick(self.clock())
            except Exception:
                logger.exception("microstructure: sampling failed")

    def tick(self, now_ns: int) -> None:
        """Sample every book's top, place the trades that arrived since the last tick, evict old data."""
        with self._lock:
            if self.started_ns is None:
                self.started_ns = now_ns
            for book in self.hub.books():
                self._sample_locked(book, now_ns)
            preloaded = self._preloaded
            while self._pending:
                trade = self._pending.popleft()
                if preloaded:
                    key = trade_key(trade)
                    if preloaded.get(key):
                        continue  # its preloaded copy is already placed
                    if key in preloaded:
                        preloaded[key] = True
                self._place_locked(trade)
            if preloaded and now_ns > self._preloaded_until_ns:
                self._preloaded = {}
            for window in self._windows.values():
                window.evict(now_ns)

    def _sample_locked(self, book: str, now_ns: int) -> None:
        view = self.hub.view(book, 1)
        if view is None:
            return
        scale = Scale(view.price_exp, view.size_exp)
        window = self._windows.get(book)
        if window is None:
            window = self._windows[book] = self._new_window(book, scale)
        elif window.scale != scale:
            logger.warning("microstructure: %s changed precision; its window starts again", book)
            window = self._windows[book] = MarketWindow(scale, self.config.keep_ns, trades_from_ns=now_ns)
        if view.is_stale:
            return  # a resynchronising book is not a quote anyone could trade on: no sample
        bid, bid_qty = view.bids[0] if view.bids else (0, 0)
        ask, ask_qty = view.asks[0] if view.asks else (0, 0)
        window.add_sample(TopSample(now_ns, bid, bid_qty, ask, ask_qty))

    def _window_locked(self, book: str) -> MarketWindow | None:
        """The book's window; created here for a book the hub has but the sampler has not visited yet."""
        window = self._windows.get(book)
        if window is None:
            view = self.hub.view(book, 0)
            if view is not None:
                window = self._windows[book] = self._new_window(book, Scale(view.price_exp, view.size_exp))
        return window

    def _new_window(self, book: str, scale: Scale) -> MarketWindow:
        since = self._trades_since.get(book.partition(":")[2], self.started_ns)
        return MarketWindow(scale, self.config.keep_ns, trades_from_ns=since)  # None: from its first trade

    def _place_locked(self, trade: Trade) -> None:
        self.trades_seen += 1
        venue_window = self._window_locked(book_id(trade.venue, trade.symbol))
        if venue_window is None:
            self.trades_unplaced += 1
            return
        tick = TradeTick(trade.receive_ts_ns, trade.price, trade.qty, trade.aggressor)
        venue_window.add_trade(tick)
        consolidated = self._window_locked(book_id(CONSOLIDATED, trade.symbol))
        if consolidated is not None:
            rescaled = rescale(tick, venue_window.scale, consolidated.scale)
            if rescaled is not None:
                consolidated.add_trade(rescaled)

    def add_trade(self, trade: Trade) -> None:
        """As the hub's trade listener does (for callers that feed trades themselves)."""
        self._pending.append(trade)

    def preload(self, trades: list[Trade], *, since_ns: int | None = None, symbols: Iterable[str] = ()) -> int:
        """Trades from before this service existed (the bus's recent trades), ahead of the live ones; a trade
        that also arrives live, before the preload or after it, is taken once. Call before the sampler starts.
        `since_ns` and `symbols`: the preload holds every trade of these symbols since then (the windows'
        coverage)."""
        if since_ns is not None:
            for symbol in symbols:
                self._trades_since[symbol] = since_ns
        live = {trade_key(t) for t in self._pending}
        earlier = [t for t in trades if trade_key(t) not in live]
        self._pending.extendleft(reversed(earlier))
        if earlier:
            self._preloaded = dict.fromkeys(map(trade_key, earlier), False)
            self._preloaded_until_ns = max(t.receive_ts_ns for t in earlier) + PRELOAD_OVERLAP_NS
        return len(earlier)

    # --- reading ------------------------------------------------------------------------------------

    def books(self) -> list[str]:
        with self._lock:
            return sorted(self._windows)

    def has_book(self, book: str) -> bool:
        with self._lock:
            return book in self._windows

    def metrics(
        self, book: str, windows_s: tuple[int, ...], now_ns: int | None = None, *, use_cache: bool = True
    ) -> dict[int, MetricsResult]:
        """The metrics of one book over each of `windows_s` ending now; results younger than HFT_MICRO_CACHE_MS
        are reused (every REST and WebSocket reader of a book shares them). KeyError: a book with no window."""
        now = self.clock() if now_ns is None else now_ns
        out: dict[int, MetricsResult] = {}
        for window_s in windows_s:
            cached = self._cache.get((book, window_s)) if use_cache else None
            if cached is not None and 0 <= now - cached.ts_ns < self.config.cache_ns:
                out[window_s] = cached
        missing = tuple(w for w in windows_s if w not in out)
        if not missing:
            return out
        view = self.hub.view(book, self.config.depth)
        with self._lock:
            window = self._windows[book]
            levels = None
            # A stale book is not the market; a precision change is picked up by the sampler's next tick.
            if view is not None and not view.is_stale and window.scale == Scale(view.price_exp, view.size_exp):
                levels = BookLevels(now, tuple(view.bids), tuple(view.asks))
            computed = compute_all_windows(window, levels, now_ns=now, params=self.params, windows_s=missing)
        for window_s, result in computed.items():
            if use_cache:
                self._cache[(book, window_s)] = result
            out[window_s] = result
        return out


# How late the live copy of a preloaded trade may still arrive and be recognised.
PRELOAD_OVERLAP_NS = 60 * 1_000_000_000


def trade_key(trade: Trade) -> tuple[str, str, str, int]:
    return trade.venue, trade.symbol, trade.trade_id, trade.receive_ts_ns


def rescale(tick: TradeTick, source: Scale, target: Scale) -> TradeTick | None:
    """A trade at the consolidated book's (finer or equal) exponents; None if the target is coarser."""
    price_shift, size_shift = target.price_exp - source.price_exp, target.size_exp - source.size_exp
    if price_shift < 0 or size_shift < 0:
        return None  # rounding a trade would make it up; the consolidated book is never coarser in practice
    if not price_shift and not size_shift:
        return tick
    return TradeTick(tick.ts_ns, tick.price * 10**price_shift, tick.qty * 10**size_shift, tick.aggressor)


_lock = threading.Lock()
_service: MicrostructureService | None = None


def live_settings() -> LiveSettings:
    return LiveSettings(
        sample_interval_ns=settings.HFT_MICRO_SAMPLE_MS * NS_PER_MS,
        keep_ns=settings.HFT_MICRO_KEEP_S * 1_000_000_000,
        depth=settings.HFT_MICRO_DEPTH,
        cache_ns=settings.HFT_MICRO_CACHE_MS * NS_PER_MS,
    )


def get_microstructure() -> MicrostructureService:
    """This process's service, attached to its hub and sampling, on first use."""
    global _service
    hub = get_hub()
    with _lock:
        if _service is None or _service.hub is not hub:
            if _service is not None:
                _service.stop()  # the hub was replaced (tests reset the market)
            _service = MicrostructureService(hub, live_settings())
            if isinstance(hub.bus, RedisBus):
                # A web process started after the market did: its trade windows start full, not empty.
                symbols = sorted({book.partition(":")[2] for book in hub.books()})
                since = _service.clock() - _service.config.keep_ns
                try:
                    _service.preload(hub.bus.recent_trades(symbols, since), since_ns=since, symbols=symbols)
                except redis.RedisError as exc:
                    logger.warning("microstructure: no recent trades from Redis (%s); windows start empty", exc)
            _service.tick(_service.clock())  # windows for the books already known, before the first read
            _service.start()
        return _service


def reset_microstructure() -> None:
    """Stop and forget this process's service (tests)."""
    global _service
    with _lock:
        if _service is not None:
            _service.stop()
        _service = None
