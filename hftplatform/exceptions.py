"""The one DRF exception handler: every error leaves as `{"code", "message", "detail"}` with a stable code.

Apps raise their own exception types (each app's `exceptions.py`) carrying a machine `code` and a `kind`;
this module is the only place that turns a kind into an HTTP status.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)

STATUS_BY_KIND = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "gone": 410,
    "too_large": 413,
    "throttled": 429,
    "header_too_large": 431,
    "unavailable": 503,
}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "detail": detail}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    kind = getattr(exc, "kind", None)
    if kind in STATUS_BY_KIND and hasattr(exc, "code"):
        response = Response(error_body(exc.code, str(exc), getattr(exc, "detail", None)), status=STATUS_BY_KIND[kind])
        for name, value in getattr(exc, "headers", {}).items():
            response[name] = value
        if kind == "unauthenticated":
            response["WWW-Authenticate"] = 'Bearer realm="hftplatform"'
        return response
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        return _render_drf(exc)
    logger.exception("unhandled error in API view", exc_info=exc)
    return Response(error_body("internal_error", "Internal server error."), status=500)


def _render_drf(exc: drf.APIException) -> Response:
    if isinstance(exc, drf.ValidationError):
        body = error_body("invalid_request", "The request is not valid.", exc.detail)
    else:
        code = exc.get_codes()
        body = error_body(code if isinstance(code, str) else exc.default_code, str(exc.detail))
    return Response(body, status=exc.status_code)
