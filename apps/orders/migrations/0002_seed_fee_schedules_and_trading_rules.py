"""Seed paper-trading fees per tier (lower for higher tiers) and trading rules for the simulated market."""

from decimal import Decimal
from typing import Any

from django.db import migrations

# tier slug, maker bps, taker bps
FEES = [
    ("free", "10", "20"),
    ("basic", "8", "15"),
    ("professional", "5", "10"),
    ("enterprise", "2", "5"),
    ("hft", "0", "2.5"),
]
# symbol, tick size, lot size, minimum notional (quote currency), price band (bps around mid)
RULES = [
    ("BTC-USDT", "0.01", "0.00001", "5", 500),
    ("ETH-USDT", "0.01", "0.0001", "5", 500),
]


def seed(apps: Any, schema_editor: Any) -> None:
    Tier = apps.get_model("tiers", "Tier")
    FeeSchedule = apps.get_model("orders", "FeeSchedule")
    for slug, maker, taker in FEES:
        tier = Tier.objects.filter(slug=slug).first()
        if tier is not None:
            FeeSchedule.objects.update_or_create(
                tier=tier, defaults={"maker_fee_bps": Decimal(maker), "taker_fee_bps": Decimal(taker)}
            )
    Instrument = apps.get_model("orderbook", "Instrument")
    TradingRules = apps.get_model("orders", "TradingRules")
    for symbol, tick, lot, min_notional, band_bps in RULES:
        instrument = Instrument.objects.filter(symbol=symbol).first()
        if instrument is not None:
            TradingRules.objects.update_or_create(
                instrument=instrument,
                defaults={
                    "tick_size": Decimal(tick),
                    "lot_size": Decimal(lot),
                    "min_notional": Decimal(min_notional),
                    "price_band_bps": band_bps,
                    "is_trading": True,
                },
            )


def unseed(apps: Any, schema_editor: Any) -> None:
    apps.get_model("orders", "FeeSchedule").objects.all().delete()
    apps.get_model("orders", "TradingRules").objects.filter(instrument__symbol__in=[r[0] for r in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("tiers", "0002_seed_tiers_and_sales_group"),
        ("orderbook", "0002_seed_venues_and_instruments"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
