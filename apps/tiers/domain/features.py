"""The feature ladder: what each tier unlocks, and the cheapest tier that has a given feature."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Feature(StrEnum):
    SNAPSHOTS = "snapshots"
    JSON_STREAM = "json_stream"
    DELTA_HISTORY = "delta_history"
    MICROSTRUCTURE = "microstructure"
    BATCH_ORDERS = "batch_orders"
    BINARY_STREAM = "binary_stream"
    CO_LOCATION = "co_location"


FEATURE_CHOICES = [(f.value, f.value.replace("_", " ")) for f in Feature]


@dataclass(frozen=True, slots=True)
class TierOffer:
    slug: str
    name: str
    monthly_price: Decimal
    features: frozenset[str]
    is_public: bool = True


def cheapest_tier_with(feature: str, offers: Iterable[TierOffer]) -> TierOffer | None:
    """The lowest-priced public tier offering `feature` (ties broken by slug, for a stable answer)."""
    candidates = [o for o in offers if o.is_public and feature in o.features]
    return min(candidates, key=lambda o: (o.monthly_price, o.slug), default=None)


def unknown_features(features: Iterable[str]) -> list[str]:
    known = {f.value for f in Feature}
    return sorted(set(features) - known)
