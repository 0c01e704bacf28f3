"""The API's one exception handler: every error as `{detail, code, errors: {field: reason}}`.

Domain errors (coordination.exceptions), Django's and DRF's own errors (validation, 401, 403,
404, 405, 415, parse errors), throttling (429 with Retry-After) and a body over the size
limit (413, also answered by hive_project.http_bridge before the body is read) share it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from coordination.exceptions import DomainError
from coordination.inputs import flat_errors


def api_exception_handler(exc, context):
    """Every API error as `{detail, code, errors: {field: reason}}`, whatever raised it."""
    if isinstance(exc, DomainError):
        body: dict = {"detail": exc.message, "code": exc.code, "errors": exc.errors}
        body.update(exc.extra)
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, exceptions.Throttled):
        return throttled_response(exc, context)
    elif isinstance(exc, RequestDataTooBig):
        return Response(too_large_body(), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    response = exception_handler(exc, context)
    if response is not None:
        response.data = error_body(exc, response.data)
    return response


def error_body(exc: exceptions.APIException, data) -> dict:
    """DRF's error data in the API's one shape: a field-level 400 names each field in `errors`."""
    if isinstance(exc, exceptions.ValidationError):
        errors = {field or "body": reason for field, reason in flat_errors(data).items()}
        detail = "; ".join(f"{field}: {reason}" for field, reason in errors.items()) or "invalid input"
        return {"detail": detail, "code": "invalid", "errors": errors}
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "error"
    detail = data.get("detail", "") if isinstance(data, dict) else str(data)
    return {"detail": str(detail), "code": code, "errors": {}}


def too_large_body() -> dict:
    """The 413 answer to a request body over DATA_UPLOAD_MAX_MEMORY_SIZE (also sent by hive_project.http_bridge)."""
    reason = f"larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes a request body may have"
    return {"detail": f"Request body {reason}.", "code": "too_large", "errors": {"body": reason}}


def throttled_response(exc: exceptions.Throttled, context) -> Response:
    """429 in the API's error shape; DRF's handler adds the Retry-After header (whole seconds)."""
    response = exception_handler(exc, context)
    seconds = int(response.headers.get("Retry-After", "1"))
    response.data = {
        "detail": f"Too many requests: over this API's rate limit. Try again in {seconds} s.",
        "code": "throttled",
        "errors": {},
    }
    return response
