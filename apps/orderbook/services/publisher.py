"""FeedPublisher: turns connector outputs into sequenced book events for venue and consolidated books.

It keeps its own replica of every book it publishes, to write snapshot checkpoints, and the consolidated
book of each instrument. A venue that goes stale leaves its instrument's consolidated book; when no venue
of an instrument is live, the consolidated book itself is stale.

Nothing is lost silently when the bus fails. An event the bus did not take (the publish raised, or the
bus refused a delta because Redis restarted empty and lost the book's sequence) is still folded into the
publisher's replica, which stays equal to the connector's book, and every book is marked for re-publishing:
the next thing published for each is a snapshot of its replica (`reason="reset"`; a stale book is
re-published as a stale event), sent ahead of anything else. A failed publish raises `PublishFailed`
after that bookkeeping, so the caller logs it and carries on; `maintain` (the runner calls it every
second) re-publishes once the bus is back even when no new event comes, and checks the bus for a lost
sequence (a Redis restart between two publishes).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.consolidated import ConsolidatedBook
from apps.orderbook.domain.events import DELTA, SNAPSHOT, STALE, BookChange, BookEvent, BookStale, Trade, book_id
from apps.orderbook.domain.protocol import Output, Verified
from apps.orderbook.domain.replica import CheckpointReplica
from apps.orderbook.services.bus import MarketDataBus, unpublished

logger = logging.getLogger(__name__)
CONSOLIDATED = "consolidated"
RESET = "reset"


class PublishFailed(Exception):
    """The bus did not take some events; the publisher has recorded them and re-publishes the books."""


@dataclass(frozen=True, slots=True)
class Precision:
    price_exp: int
    size_exp: int


@dataclass(frozen=True, slots=True)
class _Route:
    """A listing's venue book, looked up once: the hot path reads it for every change."""

    book_id: str
    price_exp: int
    size_exp: int


@dataclass(frozen=True, slots=True)
class _InstrumentRoute:
    """An instrument's consolidated book, its id and exponents, and the venues live in it."""

    book_id: str
    price_exp: int
    size_exp: int
    book: ConsolidatedBook
    live: set[str]


class FeedPublisher:
    def __init__(
        self,
        bus: MarketDataBus,
        listings: dict[tuple[str, str], Precision],
        instruments: dict[str, Precision],
        clock: Callable[[], int],
        checkpoint_every_ns: int = 1_000_000_000,
        *,
        consolidate: bool = True,
    ) -> None:
        self.bus = bus
        # False where venue connections run in separate processes: one Consolidator builds those books.
        self.consolidate = consolidate
        self.listings = listings
        self.instruments = instruments
        self.clock = clock
        self.checkpoint_every_ns = checkpoint_every_ns
        self.replicas: dict[str, CheckpointReplica] = {}
        self.consolidated: dict[str, ConsolidatedBook] = {}
        self.live_venues: dict[str, set[str]] = {}
        self.checks: Counter[tuple[str, str, bool]] = Counter()
        self._last_checkpoint: dict[str, int] = {}
        self._republish: set[str] = set()  # books whose next published event must be a snapshot
        self._routes: dict[tuple[str, str], _Route] = {}
        self._instrument_routes: dict[str, _InstrumentRoute] = {}

    def handle(self, outputs: Iterable[Output]) -> list[BookEvent]:
        if type(outputs) is list and len(outputs) == 1 and type(outputs[0]) is BookChange:
            return self._publish(self._on_change(outputs[0]))  # the usual message: one book change, as below
        pending: list[BookEvent] = []
        trades: list[Trade] = []
        for output in outputs:
            if isinstance(output, BookChange):
                pending += self._on_change(output)
            elif isinstance(output, BookStale):
                pending += self._on_stale(output)
            elif isinstance(output, Trade):
                trades.append(output)
            elif isinstance(output, Verified):
                self.checks[(output.symbol, output.check, output.is_ok)] += 1
                if not output.is_ok:
                    logger.warning("%s check failed on %s: %s", output.check, output.symbol, output.detail)
        failure: Exception | None = None
        try:
            events = self._publish(pending)
        except PublishFailed as exc:
            events, failure = [], exc
        if trades:
            try:
                self.bus.publish_trades(trades)
            except Exception as exc:  # noqa: BLE001 - any bus failure: reported to the caller below
                logger.warning("bus lost %d trades: %s", len(trades), exc)
                failure = failure or PublishFailed(f"{len(trades)} trades not published: {exc}")
        if failure is not None:
            raise failure
        return events

    def maintain(self) -> list[BookEvent]:
        """Re-publish the books a failure left behind, and any whose sequence the bus has lost (every second)."""
        try:
            lost = self.bus.lost_books(check=not self._republish)
        except Exception as exc:
            raise PublishFailed(f"bus unavailable: {exc}") from exc
        if lost:
            logger.warning("bus lost the sequence of %s (Redis restarted?): re-publishing every book", sorted(lost))
            self._republish.update(self.replicas)
        return self._publish([]) if self._republish else []

    def _publish(self, pending: list[BookEvent]) -> list[BookEvent]:
        """Publish, first re-publishing the books that need it; keeps the replicas right whatever the bus does."""
        published: list[BookEvent] = []
        for _ in range(2):  # a second round only after the bus refused deltas; re-publishing is never refused
            republish = self._republish
            resets = [self._reset_event(b) for b in sorted(republish) if b in self.replicas] if republish else []
            batch = resets + pending if resets else pending
            if not batch:
                break
            now = self.clock()
            try:
                self.bus.publish(batch, now)
            except Exception as exc:
                for event in pending:
                    event.seq = 0  # whatever the bus may have numbered, the re-published snapshot supersedes it
                    self._absorb(event)
                self._republish.update(self.replicas)
                logger.warning("publish failed (%s): %d events kept for re-publishing", exc, len(pending))
                raise PublishFailed(str(exc)) from exc
            self._republish.clear()
            refused = False
            for event in batch:
                if event.seq:
                    self._after_publish(event, now)
                    published.append(event)
                else:
                    self._absorb(event)
                    refused = True
            pending = []
            # A book the bus lost that this batch did not re-publish: Redis restarted, and every book's
            # history and checkpoint went with it, so every book is re-published.
            lost = self.bus.lost_books()
            if not lost and not refused:
                break  # the usual case
            if lost and resets:
                lost -= {e.book for e in resets}
            if lost or refused:
                logger.warning("bus lost the sequence of %s (Redis restarted?): re-publishing every book", sorted(lost))
                self._republish.update(self.replicas)
            if not refused:
                break
        return published

    def _reset_event(self, book: str) -> BookEvent:
        """The publisher's replica of a book, to publish as its reset: a snapshot, or stale with no levels."""
        event = self.replicas[book].snapshot_event(0)
        event.seq, event.receive_ts_ns, event.reason = 0, self.clock(), RESET
        if event.kind == STALE:
            event.bids, event.asks = (), ()
        return event

    def _absorb(self, event: BookEvent) -> None:
        replica = self.replicas.get(event.book)
        if replica is None:
            replica = self.replicas[event.book] = CheckpointReplica(event.book, event.price_exp, event.size_exp)
        replica.absorb(event)

    def _on_change(self, change: BookChange) -> list[BookEvent]:
        """The venue event of a change and, when consolidating, its instrument's event (empty deltas dropped)."""
        route = self._routes.get((change.venue, change.symbol)) or self._route(change.venue, change.symbol)
        bids, asks, is_reset = change.bids, change.asks, change.is_reset
        out: list[BookEvent] = []
        if is_reset or bids or asks:
            out.append(
                BookEvent(
                    route.book_id,
                    0,
                    SNAPSHOT if is_reset else DELTA,
                    bids,
                    asks,
                    route.price_exp,
                    route.size_exp,
                    change.exchange_ts_ns,
                    change.receive_ts_ns,
                    0,
                )
            )
        if self.consolidate:
            event = self._fold_change(change, route.price_exp, route.size_exp)
            if event.kind != DELTA or event.bids or event.asks:
                out.append(event)
        return out

    def _route(self, venue: str, symbol: str) -> _Route:
        prec = self.listings[(venue, symbol)]
        route = self._routes[(venue, symbol)] = _Route(book_id(venue, symbol), prec.price_exp, prec.size_exp)
        return route

    def _fold_change(self, change: BookChange, price_exp: int, size_exp: int) -> BookEvent:
        """Fold a venue change (levels at the venue's exponents) into its instrument's consolidated book."""
        symbol = change.symbol
        cons = self._instrument_routes.get(symbol) or self._instrument_route(symbol)
        bids, asks = cons.book.apply(
            change.venue, change.bids, change.asks, price_exp=price_exp, size_exp=size_exp, is_reset=change.is_reset
        )
        live = cons.live
        was_live = bool(live)
        live.add(change.venue)
        replica = self.replicas.get(cons.book_id)
        if was_live and replica is not None and not replica.is_stale:
            kind = DELTA
        else:
            # First live venue (again): the consolidated book restarts with a snapshot of everything it holds.
            kind, bids, asks = SNAPSHOT, cons.book.levels(BID), cons.book.levels(ASK)
        return BookEvent(
            cons.book_id,
            0,
            kind,
            bids,
            asks,
            cons.price_exp,
            cons.size_exp,
            change.exchange_ts_ns,
            change.receive_ts_ns,
            0,
        )

    def _instrument_route(self, symbol: str) -> _InstrumentRoute:
        prec = self.instruments[symbol]
        book = self.consolidated.get(symbol)
        if book is None:
            book = self.consolidated[symbol] = ConsolidatedBook(prec.price_exp, prec.size_exp)
        live = self.live_venues.get(symbol)
        if live is None:
            live = self.live_venues[symbol] = set()
        route = _InstrumentRoute(book_id(CONSOLIDATED, symbol), prec.price_exp, prec.size_exp, book, live)
        self._instrument_routes[symbol] = route
        return route

    def consolidate_events(self, events: Iterable[BookEvent]) -> list[BookEvent]:
        """The Consolidator's path: fold published venue events into consolidated books and publish those."""
        pending: list[BookEvent] = []
        for event in events:
            venue, _, symbol = event.book.partition(":")
            if venue == CONSOLIDATED or symbol not in self.instruments:
                continue
            if event.kind == STALE:
                pending += self._fold_stale(BookStale(venue, symbol, event.reason, event.receive_ts_ns))
            else:
                change = BookChange(
                    venue,
                    symbol,
                    event.bids,
                    event.asks,
                    event.kind == SNAPSHOT,
                    event.exchange_ts_ns,
                    event.receive_ts_ns,
                )
                pending.append(self._fold_change(change, event.price_exp, event.size_exp))
        pending = [p for p in pending if p.kind != DELTA or p.bids or p.asks]
        return self._publish(pending)

    def _on_stale(self, stale: BookStale) -> list[BookEvent]:
        route = self._routes.get((stale.venue, stale.symbol)) or self._route(stale.venue, stale.symbol)
        out = [
            unpublished(
                route.book_id, STALE, (), (), route.price_exp, route.size_exp, None, stale.receive_ts_ns, stale.reason
            )
        ]
        return out + (self._fold_stale(stale) if self.consolidate else [])

    def _fold_stale(self, stale: BookStale) -> list[BookEvent]:
        live = self.live_venues.get(stale.symbol)
        if live is None or stale.venue not in live:
            return []  # already out of the consolidated book
        cons = self._instrument_routes.get(stale.symbol) or self._instrument_route(stale.symbol)
        live.discard(stale.venue)
        bids, asks = cons.book.remove_venue(stale.venue)
        if not live:
            reason = f"no live venue ({stale.venue}: {stale.reason})"
            kind, bids, asks = STALE, (), ()
        elif bids or asks:
            reason, kind = "", DELTA
        else:
            return []
        return [
            unpublished(
                cons.book_id, kind, bids, asks, cons.price_exp, cons.size_exp, None, stale.receive_ts_ns, reason
            )
        ]

    def _after_publish(self, event: BookEvent, now: int) -> None:
        replica = self.replicas.get(event.book)
        if replica is None:
            # A new book: a replica from here; the next checkpoint is written from its first snapshot.
            replica = self.replicas[event.book] = CheckpointReplica(event.book, event.price_exp, event.size_exp)
        elif event.seq != replica.seq + 1 and event.kind != SNAPSHOT and replica.seq:
            # Numbers this publisher did not see came between (a pipeline the client re-sent after a dropped
            # connection, another writer): the replica is still this publisher's book, which the bus must
            # now be given whole.
            replica.absorb(event)
            replica.seq, replica.publish_ts_ns = event.seq, event.publish_ts_ns
            self._republish.add(event.book)
            return
        replica.apply(event)
        due = now - self._last_checkpoint.get(event.book, 0) >= self.checkpoint_every_ns
        if event.kind in (SNAPSHOT, STALE) or due:
            try:
                self.bus.checkpoint(replica.snapshot_event(now))
            except Exception as exc:  # noqa: BLE001 - a missed checkpoint is retried with the next event
                logger.warning("checkpoint of %s failed: %s", event.book, exc)
                return
            self._last_checkpoint[event.book] = now

    def flush_checkpoints(self) -> None:
        now = self.clock()
        for book, replica in self.replicas.items():
            if replica.seq:
                self.bus.checkpoint(replica.snapshot_event(now))
                self._last_checkpoint[book] = now
