"""Tier facts as immutable values for the hot path, and the cheapest tier offering a feature."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from apps.tiers.domain.features import TierOffer
from apps.tiers.domain.ratelimit import Limits
from apps.tiers.models import Tier


@dataclass(frozen=True, slots=True)
class TierInfo:
    id: int
    slug: str
    name: str
    limits: Limits
    latency_sla_p95_ms: int | None
    monthly_price: Decimal
    max_ws_connections: int
    max_subscriptions_per_connection: int
    max_book_depth: int | None
    delta_history_length: int
    max_batch_size: int | None
    features: frozenset[str]

    def has_feature(self, feature: str) -> bool:
        return feature in self.features


def tier_info(tier: Tier) -> TierInfo:
    return TierInfo(
        id=tier.pk,
        slug=tier.slug,
        name=tier.name,
        limits=Limits(
            rate_milli_per_s=int(tier.refill_per_second * 1000),
            burst=tier.burst,
            per_minute=tier.quota_per_minute,
            per_hour=tier.quota_per_hour,
            per_day=tier.quota_per_day,
        ),
        latency_sla_p95_ms=tier.latency_sla_p95_ms,
        monthly_price=tier.monthly_price,
        max_ws_connections=tier.max_ws_connections,
        max_subscriptions_per_connection=tier.max_subscriptions_per_connection,
        max_book_depth=tier.max_book_depth,
        delta_history_length=tier.delta_history_length,
        max_batch_size=tier.max_batch_size,
        features=frozenset(tier.features),
    )


def list_public_tiers() -> list[Tier]:
    return list(Tier.objects.filter(is_public=True).order_by("monthly_price", "slug"))


def load_offers() -> tuple[TierOffer, ...]:
    return tuple(
        TierOffer(t.slug, t.name, t.monthly_price, frozenset(t.features), t.is_public) for t in Tier.objects.all()
    )
