"""What every API view module shares: documented error responses and input validation."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from rest_framework import exceptions

from coordination.inputs import flat_errors

ERRORS = {
    400: OpenApiTypes.OBJECT,
    401: OpenApiTypes.OBJECT,
    403: OpenApiTypes.OBJECT,
    404: OpenApiTypes.OBJECT,
    409: OpenApiTypes.OBJECT,
}
READ_ERRORS = {401: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT}


def errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}


def validated(serializer_class, data) -> dict:
    """Validated data, or a 400 naming each bad field as team files and commands do ("members[0].role")."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise exceptions.ValidationError({field: [reason] for field, reason in flat_errors(serializer.errors).items()})
    return serializer.validated_data
