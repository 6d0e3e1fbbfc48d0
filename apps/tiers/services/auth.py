"""API-key resolution and admission: key → customer → tier, cached in process, invalidated on change.

Warm, a request costs no SQL: the cache maps a key prefix to an immutable `Principal`. Staff changes
(signals) bump a generation counter in Redis; the rate-limit script returns it on every request, so
each process notices within one request and drops its cache. Embedded, the counter is local.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import redis
from django.conf import settings
from django.db import transaction
from rest_framework_api_key.crypto import KeyGenerator

from apps.tiers.domain.features import TierOffer, cheapest_tier_with
from apps.tiers.domain.keys import extract_key, split_key
from apps.tiers.domain.network import IPAddress, IPNetwork, client_address, is_ip_allowed, parse_networks
from apps.tiers.exceptions import (
    CustomerSuspended,
    ExpiredAPIKey,
    FeatureNotInTier,
    InvalidAPIKey,
    IPNotAllowed,
    MissingKeyPermission,
    RevokedAPIKey,
)
from apps.tiers.models import APIKey, Customer
from apps.tiers.services import redis_client
from apps.tiers.services.catalog import TierInfo, load_offers, tier_info
from apps.tiers.services.ratelimit import AUTH_GENERATION_KEY, LimitResult, PendingLimit, limiter

_key_generator = KeyGenerator()
# Unknown prefixes are cached too (so a flood of bad keys costs no SQL), up to this many.
MAX_NEGATIVE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Everything the hot path needs about a key, its customer and tier; immutable and cheap to share."""

    key_id: str
    key_prefix: str
    key_label: str
    hashed_key: str
    customer_id: int
    customer_name: str
    is_suspended: bool
    is_revoked: bool
    expires_at: datetime | None
    can_read: bool
    can_trade: bool
    networks: tuple[IPNetwork, ...]
    tier: TierInfo
    is_authenticated: ClassVar[bool] = True  # for DRF and Django's request.user conventions


@dataclass(frozen=True, slots=True)
class Admission:
    principal: Principal
    limit: LimitResult
    address: IPAddress | None


def principal_from(key: APIKey, customer: Customer) -> Principal:
    return Principal(
        key_id=key.pk,
        key_prefix=key.prefix,
        key_label=key.name,
        hashed_key=key.hashed_key,
        customer_id=customer.pk,
        customer_name=customer.name,
        is_suspended=customer.status != Customer.Status.ACTIVE,
        is_revoked=key.revoked,
        expires_at=key.expiry_date,
        can_read=key.can_read,
        can_trade=key.can_trade,
        networks=parse_networks(key.allowed_cidrs),
        tier=tier_info(customer.tier),
    )


class KeyCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Principal | None] = {}
        self._negatives = 0
        self._offers: tuple[TierOffer, ...] | None = None
        self.generation: int | None = None

    def principal(self, prefix: str) -> Principal | None:
        try:
            return self._entries[prefix]
        except KeyError:
            pass
        key = APIKey.objects.select_related("customer__tier").filter(prefix=prefix).first()
        principal = principal_from(key, key.customer) if key is not None else None
        with self._lock:
            if principal is None:
                self._negatives += 1
                if self._negatives > MAX_NEGATIVE_ENTRIES:
                    self._entries = {k: v for k, v in self._entries.items() if v is not None}
                    self._negatives = 1
            self._entries[prefix] = principal
        return principal

    def offers(self) -> tuple[TierOffer, ...]:
        offers = self._offers
        if offers is None:
            offers = self._offers = load_offers()
        return offers

    def invalidate(self, generation: int | None = None) -> None:
        with self._lock:
            self._entries = {}
            self._negatives = 0
            self._offers = None
            if generation is not None:
                self.generation = generation

    def observe(self, generation: int) -> bool:
        """Note the cluster-wide generation; True (and the cache dropped) when it moved."""
        if generation == self.generation:
            return False
        self.invalidate(generation)
        return True


key_cache = KeyCache()


def bump_generation() -> None:
    """Tell every process that keys, customers or tiers changed. Called after commit."""
    client = redis_client.get_redis()
    generation = None
    if client is not None:
        try:
            generation = int(client.incr(AUTH_GENERATION_KEY))
        except redis.RedisError:
            # Redis down: this process still drops its cache; the others learn when Redis is back.
            redis_client.trip_breaker()
    key_cache.invalidate(generation)


def schedule_generation_bump() -> None:
    transaction.on_commit(bump_generation)


def resolve_key(raw_key: str) -> Principal:
    """The principal of a presented key, or the tiers error that says why it cannot be used."""
    prefix, _ = split_key(raw_key)
    principal = key_cache.principal(prefix)
    if principal is None or not _key_generator.verify(raw_key, principal.hashed_key):
        raise InvalidAPIKey("The API key is not valid.")
    # Revoked and expired are told apart only to a caller who holds the whole secret.
    if principal.is_revoked:
        raise RevokedAPIKey("This API key has been revoked.")
    if principal.expires_at is not None and principal.expires_at.timestamp() <= time.time():
        raise ExpiredAPIKey("This API key has expired.")
    return principal


def check_access(principal: Principal, address: IPAddress | None) -> None:
    if principal.is_suspended:
        raise CustomerSuspended("This customer account is suspended; contact support.")
    if not is_ip_allowed(address, principal.networks):
        raise IPNotAllowed(f"Address {address} is not on this key's allow-list.", detail={"address": str(address)})


def check_key_permission(principal: Principal, permission: str) -> None:
    allowed = {"read": principal.can_read, "trade": principal.can_trade}.get(permission, False)
    if not allowed:
        raise MissingKeyPermission(
            f"This API key lacks the '{permission}' permission.", detail={"permission": permission}
        )


def check_feature(principal: Principal, feature: str) -> None:
    if principal.tier.has_feature(feature):
        return
    offer = cheapest_tier_with(feature, key_cache.offers())
    upgrade = f"; available from the '{offer.slug}' tier" if offer else ""
    raise FeatureNotInTier(
        f"Your tier '{principal.tier.slug}' does not include '{feature}'{upgrade}.",
        detail={"feature": feature, "tier": principal.tier.slug, "available_from": offer.slug if offer else None},
    )


@dataclass(frozen=True, slots=True)
class BegunAdmission:
    """A request whose key checked out and whose rate-limit call is under way (see `begin_admission`)."""

    raw_key: str
    principal: Principal
    address: IPAddress | None
    remote_addr: str | None
    forwarded_for: str | None
    pending: PendingLimit


def begin_admission(
    *,
    authorization: str | None,
    x_api_key: str | None,
    query_key: str | None,
    remote_addr: str | None,
    forwarded_for: str | None,
    now_ms: int | None = None,
) -> BegunAdmission:
    """Authenticate a request and send its rate-limit call, without waiting for the answer.

    Raises the tiers error that says why the key cannot be used. `finish_admission` reads the answer:
    whatever the request does in between overlaps the Redis round trip.
    """
    raw_key = extract_key(authorization, x_api_key, query_key, settings.HFT_MAX_KEY_HEADER_BYTES)
    principal = resolve_key(raw_key)
    # Parsing the address costs on every request; only an allow-list needs it.
    address = client_address(remote_addr, forwarded_for, _trusted_proxies()) if principal.networks else None
    check_access(principal, address)
    pending = limiter.begin(principal.customer_id, principal.tier.limits, now_ms)
    return BegunAdmission(raw_key, principal, address, remote_addr, forwarded_for, pending)


def finish_admission(begun: BegunAdmission) -> Admission:
    """The admission of a begun request: its rate-limit answer (a refusal is in the result)."""
    principal, address = begun.principal, begun.address
    limit = begun.pending.result()
    if limit.auth_generation is not None and key_cache.observe(limit.auth_generation):
        # Staff changed something somewhere: judge this request by the fresh rows.
        principal = resolve_key(begun.raw_key)
        if principal.networks and address is None:
            address = client_address(begun.remote_addr, begun.forwarded_for, _trusted_proxies())
        check_access(principal, address)
    return Admission(principal, limit, address)


_trusted_cache: tuple[tuple[str, ...], tuple[IPNetwork, ...]] = ((), ())


def _trusted_proxies() -> tuple[IPNetwork, ...]:
    global _trusted_cache
    raw = tuple(settings.HFT_TRUSTED_PROXIES)
    if raw != _trusted_cache[0]:
        _trusted_cache = (raw, parse_networks(" ".join(raw)))
    return _trusted_cache[1]
