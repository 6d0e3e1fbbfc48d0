"""Header parsing, IP allow-lists, the feature ladder and the rate-limit header formats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.tiers.domain.features import TierOffer, cheapest_tier_with
from apps.tiers.domain.headers import policy_header, rate_headers
from apps.tiers.domain.keys import extract_key, split_key
from apps.tiers.domain.network import client_address, is_ip_allowed, parse_address, parse_networks
from apps.tiers.domain.ratelimit import Bucket, Limits, decide
from apps.tiers.exceptions import (
    APIKeyHeaderTooLarge,
    ConflictingAPIKeys,
    InvalidAPIKey,
    MissingAPIKey,
)

KEY = "AbCd1234." + "x" * 32


def test_bearer_and_x_api_key_and_query_are_all_accepted() -> None:
    assert extract_key(f"Bearer {KEY}", None, None, 256) == KEY
    assert extract_key(f"bearer  {KEY} ", None, None, 256) == KEY
    assert extract_key(None, KEY, None, 256) == KEY
    assert extract_key(None, None, KEY, 256) == KEY
    assert extract_key(f"Bearer {KEY}", KEY, None, 256) == KEY


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "error"),
    [
        (None, None, MissingAPIKey),
        ("", "", MissingAPIKey),
        (f"Basic {KEY}", None, InvalidAPIKey),
        ("Bearer", None, InvalidAPIKey),
        (f"Bearer {KEY}", "AbCd1234." + "y" * 32, ConflictingAPIKeys),
        ("Bearer " + "a" * 300, None, APIKeyHeaderTooLarge),
        (None, "a" * 257, APIKeyHeaderTooLarge),
    ],
)
def test_bad_key_headers_raise_the_named_error(
    authorization: str | None, x_api_key: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        extract_key(authorization, x_api_key, None, 256)


@pytest.mark.parametrize(
    "key", ["", "nodot", "short.key", "AbCd1234." + "x" * 31, "AbCd1234." + "x" * 33, "AbCd12!4." + "x" * 32, "é" * 41]
)
def test_malformed_keys_are_invalid(key: str) -> None:
    with pytest.raises(InvalidAPIKey):
        split_key(key)


def test_allow_list_accepts_inside_and_refuses_outside() -> None:
    networks = parse_networks("10.0.0.0/8, 192.168.1.7\n2001:db8::/32")
    assert is_ip_allowed(parse_address("10.1.2.3"), networks)
    assert is_ip_allowed(parse_address("192.168.1.7"), networks)
    assert is_ip_allowed(parse_address("::ffff:10.9.9.9"), networks)  # IPv4-mapped IPv6
    assert is_ip_allowed(parse_address("2001:db8::1"), networks)
    assert not is_ip_allowed(parse_address("192.168.1.8"), networks)
    assert not is_ip_allowed(None, networks)
    assert is_ip_allowed(parse_address("8.8.8.8"), ())  # empty list: anywhere


def test_bad_cidr_is_named() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.300"):
        parse_networks("10.0.0.0/8 10.0.0.300")


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    proxies = parse_networks("127.0.0.1")
    assert str(client_address("127.0.0.1", "203.0.113.9", proxies)) == "203.0.113.9"
    assert str(client_address("198.51.100.1", "203.0.113.9", proxies)) == "198.51.100.1"
    # A client cannot smuggle an address in front of the real one: the rightmost untrusted hop wins.
    assert str(client_address("127.0.0.1", "10.0.0.1, 203.0.113.9", proxies)) == "203.0.113.9"
    assert str(client_address("127.0.0.1", "garbage", proxies)) == "127.0.0.1"


def test_cheapest_public_tier_with_a_feature() -> None:
    offers = [
        TierOffer("pro", "Pro", Decimal("499"), frozenset({"microstructure"})),
        TierOffer("ent", "Ent", Decimal("1999"), frozenset({"microstructure", "binary_stream"})),
        TierOffer("secret", "Secret", Decimal("1"), frozenset({"binary_stream"}), is_public=False),
    ]
    assert cheapest_tier_with("microstructure", offers).slug == "pro"
    assert cheapest_tier_with("binary_stream", offers).slug == "ent"
    assert cheapest_tier_with("co_location", offers) is None


def test_headers_follow_the_ietf_draft_and_name_the_tightest_policy() -> None:
    limits = Limits(rate_milli_per_s=2000, burst=5, per_minute=60, per_hour=1000, per_day=10_000)
    now = 1_700_000_000_000
    decision, _ = decide(limits, Bucket(1_000_000, now), {"minute": 10}, now)
    headers = rate_headers(limits, decision)
    assert policy_header(limits) == '"burst";q=5;w=3, "minute";q=60;w=60, "hour";q=1000;w=3600, "day";q=10000;w=86400'
    assert headers["RateLimit"].startswith('"burst";r=0;t=3, "minute";r=49;t=40, ')
    assert headers["X-RateLimit-Limit"] == "5"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Reset"] == str(now // 1000 + 3)
    assert "Retry-After" not in headers


def test_refused_headers_carry_retry_after_of_the_exhausted_window() -> None:
    limits = Limits(rate_milli_per_s=2000, burst=5, per_minute=60, per_hour=1000, per_day=10_000)
    now = 1_700_000_000_000  # 20 s into a minute
    decision, _ = decide(limits, None, {"minute": 60}, now)
    headers = rate_headers(limits, decision)
    assert headers["Retry-After"] == "40"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Limit"] == "60"
