"""Create one demo customer per public tier with a fresh API key, and print each key once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from apps.tiers.models import APIKey, Customer, Tier
from apps.tiers.services.accounts import issue_key, revoke_key

DEMO_LABEL = "demo"


class Command(BaseCommand):
    help = "Seed a demo customer per tier, each with one new API key (older demo keys are revoked)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for tier in Tier.objects.filter(is_public=True).order_by("monthly_price"):
            customer, _ = Customer.objects.get_or_create(
                name=f"Demo {tier.name}",
                defaults={"tier": tier, "contact_name": "Demo", "contact_email": f"demo+{tier.slug}@example.com"},
            )
            # Secrets are stored hashed, so an old demo key cannot be printed again: rotate it.
            for old in APIKey.objects.filter(customer=customer, name=DEMO_LABEL, revoked=False):
                revoke_key(old)
            _, secret = issue_key(customer, label=DEMO_LABEL, can_read=True, can_trade=True)
            self.stdout.write(f"demo key {tier.slug}: {secret}")
