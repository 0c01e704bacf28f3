"""Who is acting: the person or daemon every event written in this context is attributed to.

Entry points say who acts once, around the work: the web middleware for the console,
the admin and the API (DRF sets `request.user` and `request.auth` on the Django request
when it authenticates, so one middleware covers sessions and tokens), the socket's
operator actions, a command's `--as USER`, the daemon's tick. The event builder
(coordination.events) reads it, so no service has to pass it along.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

# Longest actor (user or daemon name) and token name an event records.
ACTOR_MAX_LENGTH = 150
TOKEN_NAME_MAX_LENGTH = 100


@dataclass(frozen=True)
class Actor:
    """A user name or a daemon's name, and the API token's name when one was used."""

    name: str = ""
    token: str = ""

    @classmethod
    def of(cls, user, auth=None) -> Actor:
        """The signed-in user (and the token they used); nobody for an anonymous user."""
        if not (user and getattr(user, "is_authenticated", False)):
            return NOBODY
        return cls(
            name=user.get_username()[:ACTOR_MAX_LENGTH], token=(getattr(auth, "name", "") or "")[:TOKEN_NAME_MAX_LENGTH]
        )

    def __bool__(self) -> bool:
        return bool(self.name)

    def __str__(self) -> str:
        return f"{self.name} (token “{self.token}”)" if self.token else self.name


NOBODY = Actor()

# An Actor, or a request whose user is read when an event is written (DRF authenticates late).
_current: contextvars.ContextVar = contextvars.ContextVar("hive_actor", default=None)


def current_actor() -> Actor:
    value = _current.get()
    if value is None:
        return NOBODY
    if isinstance(value, Actor):
        return value
    return Actor.of(getattr(value, "user", None), getattr(value, "auth", None))


@contextlib.contextmanager
def acting(actor: Actor | str | None = None, *, user=None, auth=None) -> Iterator[Actor]:
    """Attribute the events written inside to `actor` (a name), or to `user` with their token `auth`."""
    if actor is None:
        actor = Actor.of(user, auth)
    elif isinstance(actor, str):
        actor = Actor(name=actor[:ACTOR_MAX_LENGTH])
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


@contextlib.contextmanager
def acting_for_request(request) -> Iterator[None]:
    token = _current.set(request)
    try:
        yield
    finally:
        _current.reset(token)


class ActorMiddleware:
    """Attributes what a web request changes to its signed-in user (session or API token)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with acting_for_request(request):
            return self.get_response(request)
