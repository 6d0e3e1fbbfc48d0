"""Customers' own live-venue credentials over REST: store or replace, list (key masked), delete.

Every endpoint needs the key's `trade` permission (a credential lets us trade for the customer) and is scoped
to the caller's customer. The secret is accepted and encrypted, never returned.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orderbook.drf import validated
from apps.orders.models import VenueCredential
from apps.orders.serializers_credentials import VenueCredentialInSerializer, VenueCredentialOutSerializer
from apps.orders.services.credentials import (
    delete_venue_credential,
    list_venue_credentials,
    mask_api_key,
    put_venue_credential,
)
from apps.orders.views import principal_of

VENUE = OpenApiParameter("venue", str, OpenApiParameter.PATH, description="A live venue slug, e.g. binance")


def render_credential(credential: VenueCredential) -> dict[str, Any]:
    return {
        "venue": credential.venue,
        "api_key": mask_api_key(credential.api_key),
        "created_at": credential.created_at.isoformat(),
        "updated_at": credential.updated_at.isoformat(),
    }


class VenueCredentialsView(APIView):
    required_key_permission = "trade"

    @extend_schema(responses=VenueCredentialOutSerializer(many=True), operation_id="venue_credentials_list")
    def get(self, request: Request) -> Response:
        """Your stored venue credentials: venue, masked API key, when stored and last replaced."""
        credentials = list_venue_credentials(principal_of(request).customer_id)
        return Response([render_credential(credential) for credential in credentials])


class VenueCredentialView(APIView):
    required_key_permission = "trade"

    @extend_schema(
        parameters=[VENUE],
        request=VenueCredentialInSerializer,
        responses={201: VenueCredentialOutSerializer, 200: VenueCredentialOutSerializer},
        operation_id="venue_credentials_put",
    )
    def put(self, request: Request, venue: str) -> Response:
        """Store your API key and secret for a live venue (201), or replace the stored one (200)."""
        data = validated(VenueCredentialInSerializer(data=request.data))
        credential, is_created = put_venue_credential(
            principal_of(request).customer_id, venue, data["api_key"], data["api_secret"]
        )
        return Response(render_credential(credential), status=201 if is_created else 200)

    @extend_schema(parameters=[VENUE], request=None, responses={204: None}, operation_id="venue_credentials_delete")
    def delete(self, request: Request, venue: str) -> Response:
        """Forget your credential for a venue (live orders there are then rejected); 404 when none is stored."""
        delete_venue_credential(principal_of(request).customer_id, venue)
        return Response(status=204)
