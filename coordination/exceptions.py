"""Domain errors; coordination.api.errors turns them (and every other API error) into clean 4xx."""

from __future__ import annotations

from rest_framework import status


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
