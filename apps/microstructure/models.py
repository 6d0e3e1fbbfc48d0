"""Trade history and metric bars: written in batches by the one recorder, read by the history API.

Both are history, never read on the market-data path. Prices and sizes are exact decimals (PostgreSQL
`numeric`); a metric bar holds one flattened metric of one book over one interval.
"""

from __future__ import annotations

from django.db import models

from apps.orderbook.models import Instrument, Venue


class Trade(models.Model):
    """A venue's trade as its connector normalised it: the aggressor is the side that took liquidity."""

    class Aggressor(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"
        UNKNOWN = "", "Unknown"

    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="trades")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="trades")
    trade_id = models.CharField(
        max_length=64, help_text="The venue's id; for venues that send none (Kraken v1) one derived from the trade"
    )
    price = models.DecimalField(max_digits=38, decimal_places=18)
    qty = models.DecimalField(max_digits=38, decimal_places=18)
    aggressor = models.CharField(max_length=4, choices=Aggressor.choices, blank=True)
    exchange_ts_ns = models.BigIntegerField(null=True, help_text="The venue's event time, ns since the epoch")
    receive_ts_ns = models.BigIntegerField(help_text="Our receive time, ns since the epoch")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["venue", "instrument", "trade_id"], name="micro_trade_unique_id"),
        ]
        indexes = [models.Index(fields=["instrument", "receive_ts_ns"], name="micro_trade_inst_ts")]

    def __str__(self) -> str:
        return f"{self.venue_id}:{self.instrument_id} {self.trade_id}"


class MetricBar(models.Model):
    """One metric of one book over one bar: the value over the metric window that ends at `ts`."""

    class Interval(models.TextChoices):
        SECOND = "1s", "1 second"
        MINUTE = "1m", "1 minute"

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="metric_bars")
    venue = models.CharField(max_length=32, help_text="A venue slug, or 'consolidated'")
    interval = models.CharField(max_length=2, choices=Interval.choices)
    ts = models.DateTimeField(help_text="End of the bar (a whole second or minute, UTC)")
    metric = models.CharField(max_length=96, help_text="A flattened metric name, e.g. spread_bps or depth.bid_10bps")
    value = models.DecimalField(max_digits=40, decimal_places=18, null=True, help_text="null: not computable")

    class Meta:
        constraints = [
            # Also the index of the history read: instrument, venue, interval, metric, then a ts range.
            models.UniqueConstraint(
                fields=["instrument", "venue", "interval", "metric", "ts"], name="micro_bar_unique_key"
            ),
        ]
        indexes = [models.Index(fields=["interval", "ts"], name="micro_bar_interval_ts")]  # the retention prune

    def __str__(self) -> str:
        return f"{self.instrument_id}:{self.venue} {self.interval} {self.metric}@{self.ts:%Y-%m-%dT%H:%M:%S}"
