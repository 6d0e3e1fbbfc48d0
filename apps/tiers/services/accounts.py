"""Account use cases: issue and revoke keys, change a customer's tier, suspend and reinstate."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from django.db import transaction

from apps.tiers.models import APIKey, Customer, Tier


@transaction.atomic
def issue_key(
    customer: Customer,
    *,
    label: str,
    can_read: bool = True,
    can_trade: bool = False,
    allowed_cidrs: str = "",
    expires_at: datetime | None = None,
) -> tuple[APIKey, str]:
    """Create a key; the returned secret is shown once and never stored (only its SHA-512 is)."""
    key, secret = APIKey.objects.create_key(
        customer=customer,
        name=label,
        can_read=can_read,
        can_trade=can_trade,
        allowed_cidrs=allowed_cidrs,
        expiry_date=expires_at,
    )
    return cast(APIKey, key), secret


def revoke_key(key: APIKey) -> None:
    """Revoke for good; every process stops accepting it on its next request."""
    if not key.revoked:
        key.revoked = True
        key.save(update_fields=["revoked"])


def assign_tier(customer: Customer, tier: Tier) -> None:
    """Move a customer to another tier; the change is recorded in the customer's history."""
    if customer.tier_id != tier.pk:
        customer.tier = tier
        customer.save(update_fields=["tier"])


def set_customer_status(customer: Customer, status: str) -> None:
    if customer.status != status:
        customer.status = status
        customer.save(update_fields=["status"])
