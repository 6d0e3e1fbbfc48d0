"""Venues and instruments: our symbols, each venue's own symbol, and the fixed-point precision of each."""

from __future__ import annotations

from django.db import models


class Venue(models.Model):
    class Kind(models.TextChoices):
        EXCHANGE = "exchange", "Exchange"
        SIMULATED = "simulated", "Simulated"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EXCHANGE)
    protocol = models.CharField(max_length=32, help_text="Connector: binance, okx, kraken_v1, coinbase_exchange, ...")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Instrument(models.Model):
    """An instrument across venues. Its exponents are the finest of its venues', for the consolidated book."""

    symbol = models.CharField(max_length=40, unique=True, help_text="BASE-QUOTE, e.g. BTC-USDT")
    base = models.CharField(max_length=20)
    quote = models.CharField(max_length=20)
    price_exp = models.PositiveSmallIntegerField(help_text="Decimals of prices")
    size_exp = models.PositiveSmallIntegerField(help_text="Decimals of sizes")
    is_trading = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class Listing(models.Model):
    """An instrument on one venue: the venue's own symbol and precision."""

    venue = models.ForeignKey(Venue, on_delete=models.CASCADE, related_name="listings")
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="listings")
    venue_symbol = models.CharField(max_length=40)
    price_exp = models.PositiveSmallIntegerField()
    size_exp = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["venue", "instrument"], name="listing_venue_instrument"),
            models.UniqueConstraint(fields=["venue", "venue_symbol"], name="listing_venue_symbol"),
        ]
        ordering = ["instrument__symbol", "venue__slug"]

    def __str__(self) -> str:
        return f"{self.instrument} on {self.venue} as {self.venue_symbol}"
