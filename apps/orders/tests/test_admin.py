"""The orders admin: orders read-only with their fills, venue credentials never showing their secret."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.orders.models import Balance, Order, VenueCredential
from apps.orders.services.credentials import decrypt_secret, store_venue_credential
from apps.orders.tests.test_reads_and_bola import place
from conftest import Persona

ADMIN = "/admin/orders/"


@pytest.fixture
def staff(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "unused"))
    return client


def test_every_orders_admin_page_lists(staff: Client, paper_engine: Any, alice: Persona) -> None:
    place(alice, "a")
    for model in ("order", "balance", "tradingrules", "feeschedule", "venuecredential", "deadmansswitch"):
        assert staff.get(f"{ADMIN}{model}/").status_code == 200, model


def test_an_order_shows_its_fills_and_cannot_be_changed_or_deleted(
    staff: Client, paper_engine: Any, alice: Persona
) -> None:
    placed = place(alice, "take", price="65002", qty="1")
    page = f"{ADMIN}order/{placed['id']}/change/"

    shown = staff.get(page).content.decode()
    staff.post(page, {"status": "CANCELED"})

    assert "65001" in shown
    assert "65002" in shown
    assert 'name="status"' not in shown  # read-only: no form field to change it
    assert staff.get(f"{ADMIN}order/{placed['id']}/delete/").status_code == 403
    assert Order.objects.get(id=placed["id"]).status == "FILLED"
    assert staff.get(f"{ADMIN}order/add/").status_code == 403


def test_a_venue_credential_never_shows_its_secret(staff: Client, alice: Persona) -> None:
    credential = VenueCredential.objects.create(
        customer=alice.customer, venue="binance", api_key="pub-key-123", secret_encrypted="ENCRYPTED-SECRET-XYZ"
    )

    listing = staff.get(f"{ADMIN}venuecredential/").content.decode()
    detail = staff.get(f"{ADMIN}venuecredential/{credential.pk}/change/").content.decode()

    assert "pub-key-123" in listing
    assert "ENCRYPTED-SECRET-XYZ" not in listing + detail


def test_staff_add_a_credential_through_the_form_and_the_secret_is_stored_encrypted(
    staff: Client, alice: Persona
) -> None:
    form = {"customer": alice.customer.pk, "venue": "binance", "api_key": "pub-key-123", "secret": "plain-s3cret"}

    response = staff.post(f"{ADMIN}venuecredential/add/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    credential = VenueCredential.objects.get(customer=alice.customer, venue="binance")
    assert credential.api_key == "pub-key-123"
    assert "plain-s3cret" not in credential.secret_encrypted
    assert decrypt_secret(credential.secret_encrypted) == "plain-s3cret"
    shown = staff.get(f"{ADMIN}venuecredential/{credential.pk}/change/").content.decode()
    assert "plain-s3cret" not in shown
    assert credential.secret_encrypted not in shown
    assert 'name="secret"' in shown  # write-only: an empty password field to replace it


def test_a_new_credential_without_a_secret_is_refused(staff: Client, alice: Persona) -> None:
    form = {"customer": alice.customer.pk, "venue": "binance", "api_key": "pub-key-123", "secret": ""}

    response = staff.post(f"{ADMIN}venuecredential/add/", form)

    assert response.status_code == 200  # the form again, with its error
    assert "A new credential needs its API secret." in response.content.decode()
    assert not VenueCredential.objects.exists()


def test_staff_replace_a_secret_or_keep_it_by_leaving_the_field_empty(staff: Client, alice: Persona) -> None:
    credential = store_venue_credential(alice.customer.id, "binance", "pub-key-123", "old-s3cret")
    page = f"{ADMIN}venuecredential/{credential.pk}/change/"
    form = {"customer": alice.customer.pk, "venue": "binance", "api_key": "pub-key-456"}

    kept = staff.post(page, {**form, "secret": ""})
    credential.refresh_from_db()
    kept_secret = decrypt_secret(credential.secret_encrypted)
    replaced = staff.post(page, {**form, "secret": "new-s3cret"})
    credential.refresh_from_db()

    assert (kept.status_code, replaced.status_code) == (302, 302)
    assert kept_secret == "old-s3cret"
    assert (credential.api_key, decrypt_secret(credential.secret_encrypted)) == ("pub-key-456", "new-s3cret")


def test_staff_cannot_add_a_credential_for_a_venue_without_a_live_adapter(staff: Client, alice: Persona) -> None:
    form = {"customer": alice.customer.pk, "venue": "kraken", "api_key": "pub-key-123", "secret": "s3cret"}

    response = staff.post(f"{ADMIN}venuecredential/add/", form)

    assert response.status_code == 200
    assert not VenueCredential.objects.exists()


def test_staff_may_adjust_available_but_not_locked_funds(staff: Client, alice: Persona) -> None:
    balance = Balance.objects.create(customer=alice.customer, currency="USDT", available=100, locked=5)

    staff.post(
        f"{ADMIN}balance/{balance.pk}/change/",
        {"customer": alice.customer.pk, "currency": "USDT", "available": "250", "locked": "0"},
    )

    balance.refresh_from_db()
    assert (balance.available, balance.locked) == (250, 5)
