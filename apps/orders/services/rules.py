"""An instrument's trading rules: its saved TradingRules, or defaults from its exponents; one place for both
placement (validation) and the paper engine (execution), so the two never judge an order differently."""

from __future__ import annotations

from decimal import Decimal

from apps.orderbook.models import Instrument
from apps.orders.domain.validation import InstrumentRules

DEFAULT_BAND_BPS = 500  # the fat-finger band around mid without saved rules


def instrument_rules(instrument: Instrument) -> InstrumentRules:
    """Rules of an instrument (fetch it with `select_related("trading_rules")` to spare a query): a closed
    instrument is closed whatever its saved rules say; without saved rules, one tick and one lot of its
    exponents, no minimum notional."""
    saved = getattr(instrument, "trading_rules", None)  # reverse one-to-one: absent raises, getattr gives None
    if saved is not None:
        return InstrumentRules(
            instrument.symbol,
            instrument.base,
            instrument.quote,
            saved.tick_size,
            saved.lot_size,
            saved.min_notional,
            saved.price_band_bps,
            saved.is_trading and instrument.is_trading,
        )
    return InstrumentRules(
        instrument.symbol,
        instrument.base,
        instrument.quote,
        Decimal(1).scaleb(-instrument.price_exp),
        Decimal(1).scaleb(-instrument.size_exp),
        Decimal(0),
        DEFAULT_BAND_BPS,
        instrument.is_trading,
    )
