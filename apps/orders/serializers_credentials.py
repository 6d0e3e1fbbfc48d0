"""Input and output serializers of the venue-credentials API: the secret goes in, and never comes out."""

from __future__ import annotations

from rest_framework import serializers

# Printable ASCII without spaces: the key travels in an HTTP header (X-MBX-APIKEY) and the secret keys an HMAC,
# so a pasted newline or space is a mistake to refuse here, not a venue's -2015 later.
CREDENTIAL_TEXT = r"\A[\x21-\x7e]+\Z"
CREDENTIAL_TEXT_ERROR = "Printable ASCII without spaces (as the venue issued it)."


class VenueCredentialInSerializer(serializers.Serializer):  # type: ignore[type-arg]  # generic in the stubs only
    api_key = serializers.RegexField(
        CREDENTIAL_TEXT, max_length=256, trim_whitespace=False, error_messages={"invalid": CREDENTIAL_TEXT_ERROR}
    )
    api_secret = serializers.RegexField(
        CREDENTIAL_TEXT,
        max_length=512,
        trim_whitespace=False,
        write_only=True,
        error_messages={"invalid": CREDENTIAL_TEXT_ERROR},
    )


class VenueCredentialOutSerializer(serializers.Serializer):  # type: ignore[type-arg]  # generic in the stubs only
    venue = serializers.CharField()
    api_key = serializers.CharField(help_text="Masked: its last 4 characters only (a key of 8 or fewer: none).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
