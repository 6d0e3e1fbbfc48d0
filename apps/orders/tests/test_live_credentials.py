"""Venue credentials: encrypted at rest, a wrong key is a clear error, and production needs its own key."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from apps.orders.domain.types import OrderStatus, OrderType, Reason, Side, TimeInForce
from apps.orders.models import VenueCredential
from apps.orders.services.credentials import decrypt_secret, encrypt_secret, store_venue_credential
from apps.orders.services.live import LiveOrder, place_live
from apps.orders.services.live.errors import CredentialError
from apps.orders.tests import venue_stub
from apps.orders.tests.venue_stub import ALICE_API_KEY, ALICE_API_SECRET, BinanceStub, run_live

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
ROOT = Path(__file__).resolve().parents[3]


def load(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings in a fresh interpreter with exactly these deployment variables."""
    names = ("DATABASE_URL", "REDIS_URL", "HFT_ENV", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "HFT_CREDENTIALS_KEY")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    clean.update(DJANGO_SETTINGS_MODULE="hftplatform.settings", HFT_VAR_DIR=str(tmp_path), **env)
    probe = "import django; django.setup()"
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def stub(settings: Any) -> Iterator[BinanceStub]:
    server = venue_stub.serve_binance(settings)
    yield server
    server.stop()


@pytest.mark.django_db
def test_the_database_column_never_holds_the_plaintext(alice: Any, settings: Any) -> None:
    settings.HFT_CREDENTIALS_KEY = KEY_A
    credential = store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    with connection.cursor() as cursor:
        table = VenueCredential._meta.db_table
        cursor.execute(f"SELECT secret_encrypted FROM {table} WHERE id = %s", [credential.pk])  # noqa: S608
        (stored,) = cursor.fetchone()
    assert ALICE_API_SECRET not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert decrypt_secret(stored) == ALICE_API_SECRET


def test_encrypting_twice_gives_different_tokens(settings: Any) -> None:
    settings.HFT_CREDENTIALS_KEY = KEY_A
    assert encrypt_secret("s3cret") != encrypt_secret("s3cret")  # random IV: equal secrets are not revealed


def test_a_secret_encrypted_under_another_key_is_a_clear_error(settings: Any) -> None:
    settings.HFT_CREDENTIALS_KEY = KEY_A
    token = encrypt_secret("s3cret")
    settings.HFT_CREDENTIALS_KEY = KEY_B
    with pytest.raises(CredentialError, match="HFT_CREDENTIALS_KEY is not the key it was encrypted with"):
        decrypt_secret(token)


def test_rotation_decrypts_with_the_old_key_and_encrypts_with_the_new(settings: Any) -> None:
    settings.HFT_CREDENTIALS_KEY = KEY_A
    old_token = encrypt_secret("s3cret")
    settings.HFT_CREDENTIALS_KEY = f"{KEY_B},{KEY_A}"
    assert decrypt_secret(old_token) == "s3cret"
    new_token = encrypt_secret("s3cret")
    settings.HFT_CREDENTIALS_KEY = KEY_B
    assert decrypt_secret(new_token) == "s3cret"


def test_without_a_key_development_derives_one_from_secret_key(settings: Any) -> None:
    settings.HFT_CREDENTIALS_KEY = ""
    token = encrypt_secret("s3cret")
    assert decrypt_secret(token) == "s3cret"
    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(CredentialError):
        decrypt_secret(token)


def test_a_malformed_key_setting_is_a_configuration_error(settings: Any) -> None:
    settings.HFT_CREDENTIALS_KEY = "not-a-fernet-key"
    with pytest.raises(ImproperlyConfigured, match="Fernet"):
        encrypt_secret("s3cret")


@pytest.mark.django_db
def test_an_undecryptable_credential_rejects_the_order_before_it_is_sent(
    stub: BinanceStub, alice: Any, settings: Any
) -> None:
    settings.HFT_CREDENTIALS_KEY = KEY_A
    store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    settings.HFT_CREDENTIALS_KEY = KEY_B
    order = LiveOrder(
        order_id=uuid.uuid4(),
        customer_id=alice.customer.id,
        client_order_id="alice-1",
        symbol="BTC-USDT",
        venue="binance",
        side=Side.SELL,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=Decimal("51000"),
        quantity=Decimal("0.1"),
    )
    outcome = run_live(place_live, order)
    assert (outcome.status, outcome.reason) == (OrderStatus.REJECTED, Reason.VENUE_CREDENTIALS_INVALID.value)
    assert stub.requests == []


def test_production_without_a_credentials_key_refuses_to_start(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        HFT_ENV="production",
        DJANGO_SECRET_KEY="s" * 50,
        DJANGO_ALLOWED_HOSTS="api.example.com",
        HFT_CREDENTIALS_KEY="",
    )
    assert result.returncode != 0
    assert "HFT_CREDENTIALS_KEY" in result.stderr


def test_production_with_a_credentials_key_starts(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        HFT_ENV="production",
        DJANGO_SECRET_KEY="s" * 50,
        DJANGO_ALLOWED_HOSTS="api.example.com",
        HFT_CREDENTIALS_KEY=KEY_A,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_the_admin_form_encrypts_the_secret_and_never_shows_it(alice: Any, settings: Any) -> None:
    from apps.orders.services.live.admin_forms import VenueCredentialForm

    settings.HFT_CREDENTIALS_KEY = KEY_A
    data = {"customer": alice.customer.pk, "venue": "binance", "api_key": ALICE_API_KEY, "secret": ALICE_API_SECRET}
    form = VenueCredentialForm(data)
    assert form.is_valid(), form.errors
    credential = form.save()
    assert ALICE_API_SECRET not in credential.secret_encrypted
    assert decrypt_secret(credential.secret_encrypted) == ALICE_API_SECRET
    page = VenueCredentialForm(instance=credential).as_p()
    assert ALICE_API_SECRET not in page
    assert credential.secret_encrypted not in page


@pytest.mark.django_db
def test_the_admin_form_keeps_the_stored_secret_when_left_empty_and_needs_one_when_new(alice: Any) -> None:
    from apps.orders.services.live.admin_forms import VenueCredentialForm

    credential = store_venue_credential(alice.customer.id, "binance", ALICE_API_KEY, ALICE_API_SECRET)
    edit = VenueCredentialForm(
        {"customer": alice.customer.pk, "venue": "binance", "api_key": "rotated-key"}, instance=credential
    )
    assert edit.is_valid(), edit.errors
    assert decrypt_secret(edit.save().secret_encrypted) == ALICE_API_SECRET
    new = VenueCredentialForm({"customer": alice.customer.pk, "venue": "binance_us", "api_key": "k"})
    assert not new.is_valid()
    assert "secret" in new.errors


@pytest.mark.django_db
def test_the_admin_form_offers_only_live_venues(alice: Any) -> None:
    from apps.orders.services.live.admin_forms import VenueCredentialForm

    form = VenueCredentialForm({"customer": alice.customer.pk, "venue": "paper", "api_key": "k", "secret": "s"})
    assert not form.is_valid()
    assert "venue" in form.errors
