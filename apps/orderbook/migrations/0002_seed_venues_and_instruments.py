"""Seed the venues, the simulated market's instruments, and every instrument in the recordings."""

from django.db import migrations

VENUES = [
    ("sim", "Simulated venue (Binance protocol)", "simulated", "binance"),
    ("binance", "Binance", "exchange", "binance"),
    ("binance_us", "Binance.US", "exchange", "binance"),
    ("okx", "OKX", "exchange", "okx"),
    ("kraken", "Kraken", "exchange", "kraken_v2"),
    ("coinbase", "Coinbase", "exchange", "coinbase_advanced"),
]
# venue, venue symbol, our symbol, base, quote, price decimals, size decimals
LISTINGS = [
    ("sim", "BTCUSDT", "BTC-USDT", "BTC", "USDT", 8, 8),
    ("sim", "ETHUSDT", "ETH-USDT", "ETH", "USDT", 8, 8),
    ("binance", "BTCUSDT", "BTC-USDT", "BTC", "USDT", 8, 8),
    ("binance", "ETHUSDT", "ETH-USDT", "ETH", "USDT", 8, 8),
    ("binance", "NKNUSDT", "NKN-USDT", "NKN", "USDT", 8, 8),
    ("binance", "LRCBTC", "LRC-BTC", "LRC", "BTC", 8, 8),
    ("binance", "BLZETH", "BLZ-ETH", "BLZ", "ETH", 8, 8),
    ("binance", "RUNEEUR", "RUNE-EUR", "RUNE", "EUR", 8, 8),
    ("binance_us", "OMGBUSD", "OMG-BUSD", "OMG", "BUSD", 8, 8),
    ("binance_us", "COMPUSDT", "COMP-USDT", "COMP", "USDT", 8, 8),
    ("binance_us", "ZRXUSDT", "ZRX-USDT", "ZRX", "USDT", 8, 8),
    ("binance_us", "CRVUSDT", "CRV-USDT", "CRV", "USDT", 8, 8),
    ("okx", "BTC-USDT", "BTC-USDT", "BTC", "USDT", 1, 8),
    ("okx", "BTC-USD-220527", "BTC-USD-220527", "BTC", "USD", 1, 0),
    ("okx", "UNI-USD-SWAP", "UNI-USD-SWAP", "UNI", "USD", 3, 0),
    ("kraken", "XBT/USD", "BTC-USD", "BTC", "USD", 1, 8),
    ("kraken", "ADA/XBT", "ADA-BTC", "ADA", "BTC", 9, 8),
    ("kraken", "ETH/CHF", "ETH-CHF", "ETH", "CHF", 5, 8),
    ("kraken", "GRT/ETH", "GRT-ETH", "GRT", "ETH", 9, 8),
    ("kraken", "KSM/XBT", "KSM-BTC", "KSM", "BTC", 8, 8),
    ("kraken", "OCEAN/XBT", "OCEAN-BTC", "OCEAN", "BTC", 9, 8),
    ("kraken", "OMG/USD", "OMG-USD", "OMG", "USD", 6, 8),
    ("kraken", "SC/EUR", "SC-EUR", "SC", "EUR", 6, 8),
    ("kraken", "WAVES/EUR", "WAVES-EUR", "WAVES", "EUR", 6, 8),
    ("kraken", "XBT/CHF", "BTC-CHF", "BTC", "CHF", 5, 8),
    ("kraken", "XMR/USD", "XMR-USD", "XMR", "USD", 8, 8),
    ("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD", 2, 8),
    ("coinbase", "BAND-BTC", "BAND-BTC", "BAND", "BTC", 8, 2),
    ("coinbase", "BAND-GBP", "BAND-GBP", "BAND", "GBP", 4, 2),
    ("coinbase", "CRV-EUR", "CRV-EUR", "CRV", "EUR", 4, 2),
    ("coinbase", "DASH-BTC", "DASH-BTC", "DASH", "BTC", 8, 8),
    ("coinbase", "NMR-EUR", "NMR-EUR", "NMR", "EUR", 4, 3),
    ("coinbase", "NU-GBP", "NU-GBP", "NU", "GBP", 4, 6),
    ("coinbase", "SKL-BTC", "SKL-BTC", "SKL", "BTC", 8, 1),
    ("coinbase", "SKL-GBP", "SKL-GBP", "SKL", "GBP", 4, 1),
    ("coinbase", "SKL-USD", "SKL-USD", "SKL", "USD", 4, 1),
    ("coinbase", "YFI-BTC", "YFI-BTC", "YFI", "BTC", 5, 6),
]


def seed(apps, schema_editor):
    Venue = apps.get_model("orderbook", "Venue")
    Instrument = apps.get_model("orderbook", "Instrument")
    Listing = apps.get_model("orderbook", "Listing")
    venues = {}
    for slug, name, kind, protocol in VENUES:
        venues[slug], _ = Venue.objects.update_or_create(
            slug=slug, defaults={"name": name, "kind": kind, "protocol": protocol}
        )
    for venue, venue_symbol, symbol, base, quote, price_exp, size_exp in LISTINGS:
        instrument, created = Instrument.objects.get_or_create(
            symbol=symbol, defaults={"base": base, "quote": quote, "price_exp": price_exp, "size_exp": size_exp}
        )
        if not created and (price_exp > instrument.price_exp or size_exp > instrument.size_exp):
            instrument.price_exp = max(price_exp, instrument.price_exp)
            instrument.size_exp = max(size_exp, instrument.size_exp)
            instrument.save()
        Listing.objects.update_or_create(
            venue=venues[venue],
            instrument=instrument,
            defaults={"venue_symbol": venue_symbol, "price_exp": price_exp, "size_exp": size_exp},
        )


class Migration(migrations.Migration):
    dependencies = [("orderbook", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
