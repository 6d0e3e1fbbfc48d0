"""The staff admin: keys shown once and never their hash, revocation, tier changes by sales, suspension."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from apps.tiers.models import APIKey, Customer, Tier, UsageRecord
from apps.tiers.tests.conftest import Persona

URL = "/api/hft/rate-limits"
KEYS = "/admin/tiers/apikey/"
CUSTOMERS = "/admin/tiers/customer/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def sales_user(db: None) -> User:
    user = User.objects.create_user("sam", "sam@example.com", "unused", is_staff=True)
    user.groups.add(Group.objects.get(name="sales"))
    return user


@pytest.fixture
def sales_client(sales_user: User) -> Client:
    client = Client()
    client.force_login(sales_user)
    return client


def call_api(secret: str) -> Any:  # the test client's response, with .json()
    return Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}")


def hash_digest(key: APIKey) -> str:
    """The hex digest of the stored hash ("sha512$$<hex>"): URLs quote the `$`, so look for the digest."""
    return key.hashed_key.rsplit("$", 1)[-1]


def key_page(key: APIKey) -> str:
    return f"{KEYS}{key.prefix}/change/"


def customer_form(customer: Customer, **changes: Any) -> dict[str, Any]:
    """The fields of the customer change form as staff sees them, with `changes` applied."""
    data = {
        "name": customer.name,
        "tier": customer.tier_id,
        "status": customer.status,
        "contact_name": customer.contact_name,
        "contact_email": customer.contact_email,
        "_save": "Save",
    }
    return {**data, **changes}


def test_created_key_secret_is_shown_once_and_only_its_hash_is_stored(admin_client: Client, bob: Persona) -> None:
    response = admin_client.post(
        f"{KEYS}add/",
        {"name": "desk 7", "customer": bob.customer.pk, "can_read": "on", "allowed_cidrs": "", "_save": "Save"},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    match = re.search(r"is: (\S+)\. Please store it", " ".join(shown))
    assert match, shown
    assert match.group(0) in response.content.decode()
    secret = match.group(1)

    key = APIKey.objects.get(name="desk 7")
    assert secret.startswith(f"{key.prefix}.")
    assert key.hashed_key != secret
    assert secret not in key.hashed_key
    assert call_api(secret).status_code == 200
    assert hash_digest(key) not in response.content.decode()
    customer_page = f"{CUSTOMERS}{bob.customer.pk}/change/"
    for page in (KEYS, key_page(key), f"{KEYS}{key.prefix}/history/", "/admin/", customer_page):
        body = admin_client.get(page).content.decode()
        assert secret not in body, page
        assert hash_digest(key) not in body, page


@pytest.mark.parametrize("page", ["changelist", "change", "history", "customer", "customer_delete", "index"])
def test_no_admin_page_shows_a_key_hash(admin_client: Client, alice: Persona, page: str) -> None:
    # The library's pk is "<prefix>.<hash>", so a page built from the pk would show the hash.
    admin_client.post(key_page(alice.key), {"name": "renamed", "can_read": "on", "_save": "Save"})
    url = {
        "changelist": KEYS,
        "change": key_page(alice.key),
        "history": f"{KEYS}{alice.key.prefix}/history/",
        "customer": f"{CUSTOMERS}{alice.customer.pk}/change/",
        "customer_delete": f"{CUSTOMERS}{alice.customer.pk}/delete/",
        "index": "/admin/",
    }[page]
    response = admin_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert alice.key.prefix in body or page == "customer_delete"
    assert hash_digest(alice.key) not in body
    assert alice.secret not in body


def test_key_change_page_never_offers_the_hash_field(admin_client: Client, alice: Persona) -> None:
    form = admin_client.get(key_page(alice.key)).context["adminform"].form
    assert "hashed_key" not in form.fields
    assert "id" not in form.fields


def test_revoke_action_revokes_and_the_key_then_fails_with_revoked_code(
    admin_client: Client, alice: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    assert call_api(alice.secret).status_code == 200  # warms the key cache
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(KEYS, {"action": "revoke_keys", "_selected_action": [alice.key.prefix]})
    assert response.status_code == 302
    alice.key.refresh_from_db()
    assert alice.key.revoked

    refused = call_api(alice.secret)
    assert refused.status_code == 401
    assert refused.json()["code"] == "revoked_api_key"


def test_revoked_key_cannot_be_unrevoked_in_the_form(admin_client: Client, alice: Persona) -> None:
    admin_client.post(KEYS, {"action": "revoke_keys", "_selected_action": [alice.key.prefix]})
    admin_client.post(key_page(alice.key), {"name": "again", "can_read": "on", "_save": "Save"})
    alice.key.refresh_from_db()
    assert alice.key.revoked
    assert alice.key.name == "Alice Capital key"


def test_keys_cannot_be_deleted_in_the_admin(admin_client: Client, alice: Persona) -> None:
    assert admin_client.post(f"{KEYS}{alice.key.prefix}/delete/", {"post": "yes"}).status_code == 403
    assert APIKey.objects.filter(pk=alice.key.pk).exists()


def test_sales_can_change_tier_and_the_change_is_recorded(sales_client: Client, sales_user: User, bob: Persona) -> None:
    page = f"{CUSTOMERS}{bob.customer.pk}/change/"
    enterprise = Tier.objects.get(slug="enterprise")
    response = sales_client.post(page, {"tier": enterprise.pk, "_save": "Save"})
    assert response.status_code == 302, response.content
    bob.customer.refresh_from_db()
    assert bob.customer.tier == enterprise

    latest = bob.customer.history.latest("history_date")
    assert latest.history_user == sales_user
    assert latest.tier_id == enterprise.pk
    section = sales_client.get(page).content.decode().split("Tier changes", 1)[1]
    assert re.search(r"<td>[^<]+</td><td>sam</td><td>Free</td><td>Enterprise</td>", section), section


def test_sales_can_change_tier_but_not_status(sales_client: Client, bob: Persona) -> None:
    page = f"{CUSTOMERS}{bob.customer.pk}/change/"
    sales_client.post(page, customer_form(bob.customer, tier=Tier.objects.get(slug="basic").pk, status="suspended"))
    bob.customer.refresh_from_db()
    assert bob.customer.tier.slug == "basic"
    assert bob.customer.status == Customer.Status.ACTIVE


def test_sales_cannot_revert_a_customer_through_history(
    sales_client: Client, admin_client: Client, bob: Persona
) -> None:
    first = bob.customer.history.earliest("history_date")
    admin_client.post(CUSTOMERS, {"action": "suspend", "_selected_action": [bob.customer.pk]})
    assert sales_client.get(f"{CUSTOMERS}{bob.customer.pk}/history/").status_code == 200
    revert = f"{CUSTOMERS}{bob.customer.pk}/history/{first.history_id}/"
    assert sales_client.post(revert, customer_form(bob.customer)).status_code == 403
    bob.customer.refresh_from_db()
    assert bob.customer.status == Customer.Status.SUSPENDED


def test_sales_sees_no_keys_and_cannot_reach_key_or_add_customer_pages(sales_client: Client, alice: Persona) -> None:
    assert sales_client.get(KEYS).status_code == 403
    assert sales_client.get(key_page(alice.key)).status_code == 403
    assert sales_client.get(f"{CUSTOMERS}add/").status_code == 403
    assert sales_client.post(f"{CUSTOMERS}{alice.customer.pk}/delete/", {"post": "yes"}).status_code == 403
    body = sales_client.get(f"{CUSTOMERS}{alice.customer.pk}/change/").content.decode()
    assert alice.key.prefix not in body
    assert "Tier changes" in body


def test_sales_cannot_suspend_customers(sales_client: Client, bob: Persona) -> None:
    response = sales_client.post(CUSTOMERS, {"action": "suspend", "_selected_action": [bob.customer.pk]})
    assert response.status_code == 200  # the changelist again: the action is not offered to sales
    bob.customer.refresh_from_db()
    assert bob.customer.status == Customer.Status.ACTIVE


def test_sales_can_view_usage_but_nobody_edits_it(sales_client: Client, admin_client: Client, alice: Persona) -> None:
    record = UsageRecord.objects.create(
        api_key=alice.key, customer=alice.customer, endpoint="/api/hft/rate-limits", minute="2025-01-02T03:04:00Z"
    )
    response = sales_client.get("/admin/tiers/usagerecord/")
    assert response.status_code == 200
    body = response.content.decode()
    assert alice.key.prefix in body
    assert hash_digest(alice.key) not in body
    for client in (sales_client, admin_client):
        assert client.get(f"/admin/tiers/usagerecord/{record.pk}/change/").status_code == 403
        assert client.get("/admin/tiers/usagerecord/add/").status_code == 403


def test_staff_can_add_a_custom_tier(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/tiers/tier/add/",
        {
            "slug": "desk-special",
            "name": "Desk special",
            "refill_per_second": "25",
            "burst": 50,
            "quota_per_minute": 1000,
            "quota_per_hour": 20000,
            "quota_per_day": 200000,
            "latency_sla_p95_ms": 80,
            "monthly_price": "299.00",
            "max_ws_connections": 3,
            "max_subscriptions_per_connection": 10,
            "max_book_depth": 200,
            "delta_history_length": 500,
            "max_batch_size": "",
            "features": '["snapshots", "json_stream"]',
            "is_public": "",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content
    tier = Tier.objects.get(slug="desk-special")
    assert tier.monthly_price == Decimal("299.00")
    assert tier.is_public is False
    assert tier.history.count() == 1


def test_tier_with_shrinking_quotas_is_refused(admin_client: Client) -> None:
    free = Tier.objects.get(slug="free")
    response = admin_client.post(
        f"/admin/tiers/tier/{free.pk}/change/",
        {
            "slug": "free",
            "name": "Free",
            "refill_per_second": "2",
            "burst": 5,
            "quota_per_minute": 60,
            "quota_per_hour": 10,
            "quota_per_day": 10000,
            "monthly_price": "0",
            "max_ws_connections": 1,
            "max_subscriptions_per_connection": 5,
            "delta_history_length": 0,
            "features": "[]",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    assert "must not shrink" in response.content.decode()


def test_suspend_action_makes_the_customers_keys_refused(
    admin_client: Client, alice: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    assert call_api(alice.secret).status_code == 200  # warms the key cache
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(CUSTOMERS, {"action": "suspend", "_selected_action": [alice.customer.pk]})

    refused = call_api(alice.secret)
    assert refused.status_code == 403
    assert refused.json()["code"] == "customer_suspended"
    assert alice.customer.history.latest("history_date").history_user.is_superuser

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(CUSTOMERS, {"action": "reinstate", "_selected_action": [alice.customer.pk]})
    assert call_api(alice.secret).status_code == 200


def test_admin_site_is_branded(admin_client: Client) -> None:
    assert "hftplatform admin" in admin_client.get("/admin/").content.decode()
