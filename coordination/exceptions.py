"""Domain errors and the one API exception handler that turns them into clean 4xx."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DomainError(Exception):
    """A request the coordination rules refuse. Carries field -> reason."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(
        self, message: str = "", *, field: str = "", errors: dict[str, str] | None = None, extra: dict | None = None
    ):
        self.errors = dict(errors or {})
        # Further keys of the error body a client acts on (e.g. where a replay can resume).
        self.extra = dict(extra or {})
        if field:
            self.errors[field] = message
        # Readable on its own (command line, logs): every field with its reason.
        self.message = "; ".join(f"{k}: {v}" for k, v in self.errors.items()) or message
        super().__init__(self.message)


class ConflictError(DomainError):
    """The state changed under the request (answered twice, task already finished…)."""

    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class CursorExpired(DomainError):
    """A replay cursor below the retention horizon: the events after it are gone."""

    status_code = status.HTTP_410_GONE
    code = "cursor_expired"


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body: dict = {"detail": exc.message, "code": exc.code}
        if exc.errors:
            body["errors"] = exc.errors
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
    return exception_handler(exc, context)


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
