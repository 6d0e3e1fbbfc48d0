"""DRF permission: the key's permission (read or trade) and the tier's feature, named on the view.

A view states `required_key_permission = "trade"` (default "read") and `required_feature = "..."`;
other apps need not import this module: it is the default permission class in settings.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.tiers.exceptions import MissingAPIKey
from apps.tiers.services.auth import Principal, check_feature, check_key_permission


class HasKeyPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            raise MissingAPIKey("Send your API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
        check_key_permission(principal, getattr(view, "required_key_permission", "read"))
        feature = getattr(view, "required_feature", None)
        if feature:
            check_feature(principal, feature)
        return True
