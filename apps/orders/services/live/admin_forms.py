"""The admin form for a customer's venue credential: the secret is write-only and encrypted on save.

The orders admin (apps/orders/admin.py) wires it with `form = VenueCredentialForm`; the form never renders
the stored secret, encrypted or not, and an empty secret on edit keeps the one stored.
"""

from __future__ import annotations

from typing import Any

from django import forms

from apps.orders.models import VenueCredential
from apps.orders.services.credentials import encrypt_secret
from apps.orders.services.live.service import live_venues


def _venue_choices() -> list[tuple[str, str]]:
    return [(venue, venue) for venue in sorted(live_venues())]


class VenueCredentialForm(forms.ModelForm):  # type: ignore[type-arg]
    venue = forms.ChoiceField(choices=_venue_choices)
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Write-only: stored encrypted and never shown again. Leave empty to keep the stored secret.",
    )

    class Meta:
        model = VenueCredential
        fields = ("customer", "venue", "api_key")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if not cleaned.get("secret") and not self.instance.secret_encrypted:
            self.add_error("secret", "A new credential needs its API secret.")
        return cleaned

    def save(self, commit: bool = True) -> VenueCredential:
        secret = self.cleaned_data.get("secret")
        if secret:
            self.instance.secret_encrypted = encrypt_secret(secret)
        credential: VenueCredential = super().save(commit=commit)
        return credential
