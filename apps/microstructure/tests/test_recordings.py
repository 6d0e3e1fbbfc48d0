"""The real recordings (`../shared/data/venues/`) through the real connectors into the live windows.

Every frame of every connection of a recording is fed, in recorded time order, to the venue's connector;
its outputs go through the publisher and the bus into this process's hub, exactly as a feed runner's do,
and the windows are sampled every 100 ms of recorded time. Then:

- every metric of every book (venue and consolidated) over every window, computed each recorded second,
  is a finite number or null: no NaN, no infinity, never a float;
- each venue's trades carry the aggressor side of the book they hit. The reference is the venue's book as
  it stood when the trade message arrived (every earlier frame applied). A trade at or beyond a quote
  (price >= best ask, or <= best bid) hit that side: at or above the ask the buyer took liquidity, at or
  below the bid the seller did. At least 95% of those must agree with the connector's aggressor, and they
  must be at least half of the venue's trades, so the check cannot pass by judging nothing. This catches
  an inverted mapping (Binance `m`, Coinbase's maker side), which would make nearly all of them disagree.
- and no trade prints on the wrong side of the book: a buy at or above the best bid, a sell at or below
  the best ask (>= 95% of the trades with a two-sided book).

A trade strictly inside the spread hit an order the book never showed (hidden, or added and filled
between two book messages); it is not judged by the first rule. Coinbase's `level2` recording has many:
of its 107 trades 63 print at a quote (all agree), 44 inside the spread, 9 of them on the far half from
the aggressor's side; by Lee-Ready's mid rule that venue would agree 91%, for the book's lag, not the
mapping: no Coinbase trade prints at or beyond the opposite quote.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import pytest

from apps.microstructure.domain.metrics import WINDOWS_S
from apps.microstructure.services.live import LiveSettings, MicrostructureService
from apps.orderbook.domain.events import InstrumentSpec, Trade, book_id
from apps.orderbook.domain.protocol import Fetch, Output, Send, VenueProtocol
from apps.orderbook.domain.recording import Recording, parse_recording
from apps.orderbook.domain.venues.binance import BinanceProtocol
from apps.orderbook.domain.venues.coinbase import CoinbaseExchangeProtocol
from apps.orderbook.domain.venues.kraken import KrakenV1Protocol
from apps.orderbook.domain.venues.okx import OKXProtocol
from apps.orderbook.services.market import get_bus, get_hub
from apps.orderbook.services.publisher import FeedPublisher, Precision
from conftest import recording

SEED = importlib.import_module("apps.orderbook.migrations.0002_seed_venues_and_instruments")
S, MS = 1_000_000_000, 1_000_000
SAMPLE_NS = 100 * MS
MIN_AGREEMENT = Decimal("0.95")


def seed_specs(venue: str) -> list[InstrumentSpec]:
    return [InstrumentSpec(ours, theirs, pe, se) for v, theirs, ours, _, _, pe, se in SEED.LISTINGS if v == venue]


def recorded(venue: str) -> list[InstrumentSpec]:
    """The seeded listings the Binance recordings subscribed (the simulated market's are not in them)."""
    return [s for s in seed_specs(venue) if s.symbol not in ("BTC-USDT", "ETH-USDT")]


def instrument_precision() -> dict[str, Precision]:
    """As the seed sets instruments: the finest exponents of their venues (so consolidated trades rescale)."""
    out: dict[str, Precision] = {}
    for _, _, ours, _, _, pe, se in SEED.LISTINGS:
        old = out.get(ours, Precision(0, 0))
        out[ours] = Precision(max(old.price_exp, pe), max(old.size_exp, se))
    return out


def kraken_by_conn(rec: Recording) -> dict[str, list[InstrumentSpec]]:
    """Each recorded Kraken connection subscribed its own pairs."""
    by_name = {s.venue_symbol: s for s in seed_specs("kraken")}
    out: dict[str, list[InstrumentSpec]] = {}
    for conn, connection in rec.connections.items():
        pairs = {p for send in connection.sends for p in orjson.loads(send.text).get("pair", [])}
        out[conn] = [by_name[p] for p in sorted(pairs) if p in by_name]
    return out


Make = Callable[[str, Recording], VenueProtocol]
RECORDINGS: dict[str, tuple[str, str, Make]] = {
    "binance": ("binance_spot_2021-10-12.replay.jsonl", "binance", lambda c, r: BinanceProtocol(recorded("binance"))),
    "binance_us": (
        "binance_us_2021-10-12.replay.jsonl",
        "binance_us",
        lambda c, r: BinanceProtocol(recorded("binance_us"), venue="binance_us"),
    ),
    "okx": ("okx_2022-05-13.replay.jsonl", "okx", lambda c, r: OKXProtocol(seed_specs("okx"))),
    "kraken": (
        "kraken_v1_2021-04-17.replay.jsonl",
        "kraken",
        lambda c, r: KrakenV1Protocol(kraken_by_conn(r)[c], depth=1000),
    ),
    "coinbase": (
        "coinbase_exchange_2021-04-17.replay.jsonl",
        "coinbase",
        lambda c, r: CoinbaseExchangeProtocol(seed_specs("coinbase"), channel="level2"),
    ),
}


def frames_in_time_order(rec: Recording, make: Make) -> Iterator[tuple[int, list[Output]]]:
    """(receive ns, outputs) of every frame of every connection, in recorded order, as the shell would get
    them; each REST fetch is answered once the recording has reached the time of its REST record."""
    protocols = {conn: make(conn, rec) for conn in rec.ws_conns()}
    pending: dict[str, list[Fetch]] = {conn: [] for conn in protocols}
    merged = sorted(
        (frame.ts_s, order, index, conn, frame.text)
        for order, conn in enumerate(protocols)
        for index, frame in enumerate(rec.connections[conn].frames)
    )

    def keep(conn: str, outputs: list[Output]) -> list[Output]:
        pending[conn].extend(o for o in outputs if isinstance(o, Fetch))
        return [o for o in outputs if not isinstance(o, Fetch | Send)]

    for conn, protocol in protocols.items():
        yield 0, keep(conn, protocol.on_open(0))
    for ts_s, _, _, conn, text in merged:
        now_ns = int(ts_s * 1e9)
        for fetch in list(pending[conn]):
            answer = rec.http[fetch.path][0]
            if ts_s >= answer.ts_s:
                pending[conn].remove(fetch)
                yield now_ns, keep(conn, protocols[conn].on_rest(fetch.key, 200, answer.body, int(answer.ts_s * 1e9)))
        yield now_ns, keep(conn, protocols[conn].on_message(text, now_ns))


@dataclass
class Judged:
    agree: int = 0  # at or beyond a quote, on the aggressor's side
    disagree: int = 0  # at or beyond the opposite quote
    inside: int = 0  # strictly inside the spread: not judged by the quote rule
    wrong_side: int = 0  # a buy below the best bid, a sell above the best ask
    no_quote: int = 0  # the book was stale or one-sided
    no_book: int = 0  # the hub had not seen the book yet
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.agree + self.disagree + self.inside + self.no_quote + self.no_book

    def judge(self, aggressor: str, price: int, bid: int, ask: int) -> None:
        is_buy = aggressor == "buy"
        if price >= ask or price <= bid:
            if (price >= ask) == is_buy:
                self.agree += 1
            else:
                self.disagree += 1
                self.examples.append(f"{aggressor} at {price} against {bid} / {ask}")
        else:
            self.inside += 1
        if (is_buy and price < bid) or (not is_buy and price > ask):
            self.wrong_side += 1


@dataclass
class Replayed:
    judged: Judged
    computations: int  # (book, window) results checked
    books: set[str]
    trades_in_windows: int


def replay_into_windows(name: str) -> Replayed:
    file, venue, make = RECORDINGS[name]
    rec = parse_recording(recording(file).read_text().splitlines())
    hub, judged = get_hub(), Judged()
    listings = {(venue, s.symbol): Precision(s.price_exp, s.size_exp) for s in seed_specs(venue)}
    publisher = FeedPublisher(get_bus(), listings, instrument_precision(), lambda: now[0])
    live = MicrostructureService(hub, LiveSettings(SAMPLE_NS, 330 * S, 400, 0), clock=lambda: now[0])

    def judge(trade: Trade) -> None:
        view = hub.view(book_id(trade.venue, trade.symbol), 1)
        if view is None:
            judged.no_book += 1
        elif view.is_stale or not view.bids or not view.asks:
            judged.no_quote += 1
        else:
            judged.judge(trade.aggressor, trade.price, view.bids[0][0], view.asks[0][0])

    hub.add_trade_listener(judge)
    now = [0]
    next_sample, next_check, computations = 0, 0, 0
    for ts_ns, outputs in frames_in_time_order(rec, make):
        now[0] = max(now[0], ts_ns)
        publisher.handle(outputs)
        if now[0] >= next_sample:
            live.tick(now[0])
            next_sample = now[0] + SAMPLE_NS
        if now[0] >= next_check:
            computations += check_every_metric(live, now[0])
            next_check = now[0] + S
    live.tick(now[0])
    computations += check_every_metric(live, now[0])
    return Replayed(judged, computations, set(live.books()), live.trades_seen - live.trades_unplaced)


def check_every_metric(live: MicrostructureService, now_ns: int) -> int:
    checked = 0
    for book in live.books():
        for window_s, result in live.metrics(book, WINDOWS_S, now_ns).items():
            assert_finite(result.as_json(), f"{book} {window_s}s")
            for metric, value in result.scalars().items():
                assert value is None or isinstance(value, int) or value.is_finite(), (book, window_s, metric, value)
            checked += 1
    return checked


def assert_finite(value: Any, where: str) -> None:
    """JSON values are decimal strings, ints, None, or containers of them; never NaN, Infinity or a float."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            assert_finite(item, where)
    elif isinstance(value, str) and value and (value[0].isdigit() or value[0] == "-"):
        assert Decimal(value).is_finite(), f"{where} = {value}"
    else:
        assert not isinstance(value, float), f"{where} is a float: {value}"
        assert value not in ("NaN", "Infinity", "-Infinity", "nan", "inf"), f"{where} = {value}"


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_recorded_trades_hit_their_aggressor_side_and_metrics_stay_finite(name: str) -> None:
    result = replay_into_windows(name)
    judged = result.judged
    assert judged.total > 0, f"{name}: no trades in the recording reached the windows"
    # Every trade whose book the hub had when it arrived is in its venue's window (the others too, when the
    # book arrived before the next sampling tick placed them).
    assert judged.total - judged.no_book <= result.trades_in_windows <= judged.total
    at_quotes = judged.agree + judged.disagree
    assert 2 * at_quotes >= judged.total, (name, judged)
    assert judged.agree >= MIN_AGREEMENT * at_quotes, (name, judged)
    with_book = judged.total - judged.no_book - judged.no_quote
    assert with_book - judged.wrong_side >= MIN_AGREEMENT * with_book, (name, judged)
    assert any(b.startswith("consolidated:") for b in result.books)
    assert result.computations > len(WINDOWS_S) * len(result.books)  # checked along the way, not only at the end
