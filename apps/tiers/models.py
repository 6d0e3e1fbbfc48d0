"""Tiers, customers (organisations), their API keys, and per-minute usage."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey
from simple_history.models import HistoricalRecords

from apps.tiers.domain.features import FEATURE_CHOICES, unknown_features
from apps.tiers.domain.network import parse_networks


class Tier(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=64)
    refill_per_second = models.DecimalField(
        max_digits=10,
        decimal_places=3,
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text="Token-bucket refill, requests per second.",
    )
    burst = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="Token-bucket capacity.")
    quota_per_minute = models.PositiveIntegerField()
    quota_per_hour = models.PositiveIntegerField()
    quota_per_day = models.PositiveIntegerField()
    latency_sla_p95_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no SLA.")
    monthly_price = models.DecimalField(max_digits=12, decimal_places=2, help_text="USD per month.")
    max_ws_connections = models.PositiveIntegerField()
    max_subscriptions_per_connection = models.PositiveIntegerField()
    max_book_depth = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: full depth.")
    delta_history_length = models.PositiveIntegerField(default=0)
    max_batch_size = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no batch orders.")
    features = models.JSONField(default=list, blank=True, help_text=f"Any of: {[c for c, _ in FEATURE_CHOICES]}")
    is_public = models.BooleanField(default=True, help_text="Listed and offered in upgrade messages.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["monthly_price", "slug"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.features, list) or not all(isinstance(f, str) for f in self.features):
            raise ValidationError({"features": "A list of feature names."})
        unknown = unknown_features(self.features)
        if unknown:
            raise ValidationError({"features": f"Unknown features: {', '.join(unknown)}"})
        if self.quota_per_minute > self.quota_per_hour or self.quota_per_hour > self.quota_per_day:
            raise ValidationError("Quotas must not shrink as the window grows (minute <= hour <= day).")


class Customer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=200, unique=True)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="customers")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class APIKey(AbstractAPIKey):
    """A customer's key: `prefix.secret`, of which only the SHA-512 is stored (djangorestframework-api-key)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_keys")
    can_read = models.BooleanField(default=True, help_text="Market data and own account reads.")
    can_trade = models.BooleanField(default=False, help_text="Order entry.")
    allowed_cidrs = models.TextField(
        blank=True, help_text="Addresses or CIDRs, comma or newline separated. Empty: any address."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def clean(self) -> None:
        super().clean()
        try:
            parse_networks(self.allowed_cidrs)
        except ValueError as exc:
            raise ValidationError({"allowed_cidrs": str(exc)}) from exc


class UsageRecord(models.Model):
    """Requests, refusals and bytes for one key, endpoint and minute (flushed from Redis or memory)."""

    api_key = models.ForeignKey(APIKey, on_delete=models.CASCADE, related_name="usage")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="usage")
    endpoint = models.CharField(max_length=200)
    minute = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    refusals = models.PositiveBigIntegerField(default=0)
    bytes_out = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "endpoint", "minute"], name="usage_key_endpoint_minute")
        ]
        indexes = [models.Index(fields=["customer", "minute"])]
        ordering = ["-minute"]

    def __str__(self) -> str:
        return f"{self.api_key.prefix} {self.endpoint} {self.minute:%Y-%m-%d %H:%M}"
