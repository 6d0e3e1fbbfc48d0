"""Market-data reads for the API: snapshots from the hub's replicas, deltas from the bus's history."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from apps.orderbook.domain.book import ASK, BID
from apps.orderbook.domain.events import BookEvent, book_id
from apps.orderbook.domain.render import event_json, levels_json
from apps.orderbook.exceptions import BookNotAvailable, HistoryTooOld, SequenceAhead, UnknownPair, UnknownVenue
from apps.orderbook.models import Instrument, Listing
from apps.orderbook.services.feeds import normalise_symbol
from apps.orderbook.services.hub import BookView
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.services.publisher import CONSOLIDATED

CATALOGUE_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class Catalogue:
    instruments: dict[str, dict[str, Any]]  # symbol → its JSON, listings included
    venues_by_symbol: dict[str, frozenset[str]]
    loaded_at: float


_catalogue: Catalogue | None = None
_catalogue_lock = threading.Lock()


def catalogue() -> Catalogue:
    """Instruments and listings, cached in process for CATALOGUE_TTL_S (reference data, not market data)."""
    global _catalogue
    cached = _catalogue
    if cached is not None and time.monotonic() - cached.loaded_at < CATALOGUE_TTL_S:
        return cached
    with _catalogue_lock:
        instruments: dict[str, dict[str, Any]] = {}
        venues: dict[str, set[str]] = {}
        for inst in Instrument.objects.all().order_by("id"):
            instruments[inst.symbol] = {
                "id": inst.pk,
                "symbol": inst.symbol,
                "base": inst.base,
                "quote": inst.quote,
                "price_decimals": inst.price_exp,
                "size_decimals": inst.size_exp,
                "is_trading": inst.is_trading,
                "venues": [],
            }
        for listing in Listing.objects.select_related("venue", "instrument").order_by("venue__slug"):
            instruments[listing.instrument.symbol]["venues"].append(
                {
                    "venue": listing.venue.slug,
                    "venue_id": listing.venue.pk,  # the binary protocol's venue number; 0 is consolidated
                    "venue_symbol": listing.venue_symbol,
                    "price_decimals": listing.price_exp,
                    "size_decimals": listing.size_exp,
                }
            )
            venues.setdefault(listing.instrument.symbol, set()).add(listing.venue.slug)
        _catalogue = Catalogue(instruments, {k: frozenset(v) for k, v in venues.items()}, time.monotonic())
        return _catalogue


def forget_catalogue() -> None:
    global _catalogue
    _catalogue = None


def resolve_book(pair: str, venue: str | None) -> tuple[str, str, str]:
    """(symbol, venue label, book id) for a pair as `BTC/USD` or `BTC-USD` and an optional venue."""
    symbol = normalise_symbol(pair)
    cat = catalogue()
    if symbol not in cat.instruments:
        forget_catalogue()  # an instrument created since (HFT_FEEDS) should not wait for the TTL
        cat = catalogue()
        if symbol not in cat.instruments:
            raise UnknownPair(f"Unknown pair {pair!r}.", detail={"pair": pair})
    if not venue or venue == CONSOLIDATED:
        return symbol, CONSOLIDATED, book_id(CONSOLIDATED, symbol)
    if venue not in cat.venues_by_symbol.get(symbol, frozenset()):
        raise UnknownVenue(f"{symbol} is not listed on venue {venue!r}.", detail={"venue": venue})
    return symbol, venue, book_id(venue, symbol)


def book_snapshot(pair: str, venue: str | None, depth: int, *, breakdown: bool = False) -> dict[str, Any]:
    symbol, label, book = resolve_book(pair, venue)
    hub = get_hub()
    view = hub.view(book, depth)
    if view is None:
        raise BookNotAvailable(f"No data for {symbol} on {label} yet; is its feed running?")
    body = {
        "pair": symbol,
        "venue": label,
        "bids": levels_json(view.bids, view.price_exp, view.size_exp),
        "asks": levels_json(view.asks, view.price_exp, view.size_exp),
        "sequence": view.seq,
        "timestamp": view.publish_ts_ns,
        "exchange_timestamp": view.exchange_ts_ns,
        "stale": view.is_stale,
        "depth": depth,
        "levels_available": {"bids": view.total_bid_levels, "asks": view.total_ask_levels},
    }
    if breakdown and label == CONSOLIDATED:
        body["venues"] = venue_shares(symbol, view)
    return body


def venue_shares(symbol: str, view: BookView) -> dict[str, dict[str, list[list[str]]]]:
    """Each venue's quantity at the consolidated levels shown, from the venues' own replicas."""
    hub = get_hub()
    prices = {BID: {p for p, _ in view.bids}, ASK: {p for p, _ in view.asks}}
    shares: dict[str, dict[str, list[list[str]]]] = {}
    for venue in sorted(catalogue().venues_by_symbol.get(symbol, ())):
        venue_view = hub.view(book_id(venue, symbol), None)
        if venue_view is None or venue_view.is_stale:
            continue  # a stale venue is not in the consolidated book
        scale = 10 ** (view.price_exp - venue_view.price_exp)
        size_scale = 10 ** (view.size_exp - venue_view.size_exp)
        sides: dict[str, list[list[str]]] = {}
        for side, levels in ((BID, venue_view.bids), (ASK, venue_view.asks)):
            own = [(p * scale, q * size_scale) for p, q in levels if p * scale in prices[side]]
            sides["bids" if side == BID else "asks"] = levels_json(own, view.price_exp, view.size_exp)
        shares[venue] = sides
    return shares


def book_deltas(pair: str, venue: str | None, since: int, limit: int, history_allowed: int) -> dict[str, Any]:
    symbol, label, book = resolve_book(pair, venue)
    bus = get_bus()
    oldest, latest = bus.bounds(book)
    if since > latest:
        raise SequenceAhead(
            f"since_sequence {since} is ahead of the latest sequence {latest}.", detail={"latest_sequence": latest}
        )
    floor = max(oldest - 1, latest - history_allowed, 0)
    if since < floor:
        raise HistoryTooOld(
            f"Sequence {since} is older than the history available to you; take a snapshot.",
            detail={"oldest_available": floor, "latest_sequence": latest, "tier_history": history_allowed},
        )
    events: list[BookEvent] = bus.history(book, since, limit) if since < latest else []
    next_sequence = events[-1].seq if events else since
    return {
        "pair": symbol,
        "venue": label,
        "since_sequence": since,
        "next_sequence": next_sequence,
        "latest_sequence": latest,
        "has_more": next_sequence < latest,
        "deltas": [event_json(e) for e in events],
    }
