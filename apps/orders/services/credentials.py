"""Customers' live-venue secrets encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256), keyed by settings.

`HFT_CREDENTIALS_KEY` holds one or more Fernet keys, comma-separated: the first encrypts, any decrypts (key
rotation: prepend the new key, re-save the credentials, drop the old key). Unset outside production, a key
is derived from SECRET_KEY with HKDF so the embedded run works; production refuses to start without one.

The customer use cases (`put_venue_credential`, `list_venue_credentials`, `delete_venue_credential`) are always
scoped to one customer: another customer's credential does not exist for them.
"""

from __future__ import annotations

import base64
import re
from functools import cache
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.orders.domain.types import TERMINAL
from apps.orders.exceptions import UnknownVenue, VenueCredentialInUse, VenueCredentialNotFound
from apps.orders.services.live.errors import CredentialError
from apps.orders.services.live.service import live_venues

if TYPE_CHECKING:
    from apps.orders.models import VenueCredential

_HKDF_INFO = b"hftplatform venue credentials v1"
MASK = "****"
VENUE_SLUG = re.compile(r"[-A-Za-z0-9_]{1,32}")  # the shape of a venue slug (Order.venue is 32 long)
SHOWN_KEY_CHARS = 4


def encrypt_secret(plaintext: str) -> str:
    """The Fernet token (ASCII) to store in `VenueCredential.secret_encrypted`."""
    return _fernet(_key_setting(), settings.SECRET_KEY).encrypt(plaintext.encode()).decode("ascii")


def decrypt_secret(token: str) -> str:
    """The plaintext secret; `CredentialError` when no configured key opens it (a changed or wrong key)."""
    try:
        return _fernet(_key_setting(), settings.SECRET_KEY).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise CredentialError(
            "cannot decrypt the stored venue secret: HFT_CREDENTIALS_KEY is not the key it was encrypted "
            "with (or the stored value is damaged); restore the old key or re-enter the credential"
        ) from exc


def derived_key(secret_key: str) -> bytes:
    """A Fernet key derived from Django's SECRET_KEY (development and embedded runs only)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


def _key_setting() -> str:
    return str(getattr(settings, "HFT_CREDENTIALS_KEY", "") or "")


@cache
def _fernet(key_setting: str, secret_key: str) -> MultiFernet:
    keys = [key.strip() for key in key_setting.split(",") if key.strip()]
    if not keys:
        return MultiFernet([Fernet(derived_key(secret_key))])
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "HFT_CREDENTIALS_KEY must be Fernet keys (32 url-safe base64 bytes each), comma-separated; make one "
            "with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        ) from exc


def store_venue_credential(customer_id: int, venue: str, api_key: str, secret: str) -> VenueCredential:
    """Create or replace a customer's credential on a venue, the secret encrypted (the plaintext is not kept)."""
    credential, _ = _upsert(customer_id, venue, api_key, secret)
    return credential


def _upsert(customer_id: int, venue: str, api_key: str, secret: str) -> tuple[VenueCredential, bool]:
    from apps.orders.models import VenueCredential

    return VenueCredential.objects.update_or_create(
        customer_id=customer_id,
        venue=venue,
        defaults={"api_key": api_key, "secret_encrypted": encrypt_secret(secret)},
    )


def put_venue_credential(customer_id: int, venue: str, api_key: str, secret: str) -> tuple[VenueCredential, bool]:
    """Create or replace the customer's credential on a live venue; True when it was created."""
    if venue not in live_venues():
        raise UnknownVenue("Not a live venue: credentials are kept for live venues only.", detail=sorted(live_venues()))
    return _upsert(customer_id, venue, api_key, secret)


def list_venue_credentials(customer_id: int) -> list[VenueCredential]:
    """The customer's own credentials, by venue (the secret stays encrypted: callers render `mask_api_key`)."""
    from apps.orders.models import VenueCredential

    return list(VenueCredential.objects.filter(customer_id=customer_id).order_by("venue"))


def delete_venue_credential(customer_id: int, venue: str) -> None:
    """Forget the customer's credential on a venue; `VenueCredentialNotFound` when they have none there.

    Refused (`VenueCredentialInUse`) while the customer has open orders there: canceling or reconciling them
    at the venue needs the credential, so deleting it would strand them.
    """
    from apps.orders.models import Order, VenueCredential

    if not VENUE_SLUG.fullmatch(venue):
        # No credential is stored under such a name; and PostgreSQL refuses a NUL in a query outright.
        raise VenueCredentialNotFound("You have no credential stored for that venue.")
    open_orders = (
        Order.objects.filter(customer_id=customer_id, venue=venue)
        .exclude(status__in=[s.value for s in TERMINAL])
        .count()
    )
    if open_orders:
        raise VenueCredentialInUse(
            f"You have {open_orders} open order(s) on '{venue}': cancel them first (the cancel needs the credential).",
            detail={"open_orders": open_orders},
        )
    deleted, _ = VenueCredential.objects.filter(customer_id=customer_id, venue=venue).delete()
    if not deleted:
        raise VenueCredentialNotFound(f"You have no credential stored for venue '{venue}'.")


def mask_api_key(api_key: str) -> str:
    """The key's last 4 characters behind a fixed mask (which hides the length); a short key is masked whole."""
    if len(api_key) <= 2 * SHOWN_KEY_CHARS:
        return MASK
    return MASK + api_key[-SHOWN_KEY_CHARS:]
