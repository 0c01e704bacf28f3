"""Shared checks for the coordination commands."""

from __future__ import annotations

import getpass
import socket

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from coordination.actors import ACTOR_MAX_LENGTH, Actor
from coordination.exceptions import DomainError
from coordination.permissions import is_operator


def require_migrated_database() -> None:
    """A clear message instead of a traceback when the schema is missing or behind."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"cannot reach the database: {exc}") from exc
    if pending:
        raise CommandError(
            f"the database has {len(pending)} unapplied migration(s); run `python manage.py migrate` first"
        )


def refusal(exc: DomainError) -> CommandError:
    """A refused command as one line per problem ("field: reason"), printed without a traceback."""
    lines = [f"{field}: {reason}" if field else reason for field, reason in exc.errors.items()] or [exc.message]
    return CommandError("\n".join(lines))


def add_actor_argument(parser) -> None:
    """`--as USER`: the operator a command's changes are recorded as (the events' actor)."""
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="The operator this change is recorded as (an existing user with operator rights). "
        "Without it, the events name the account running the command (login@host).",
    )


def command_actor(options) -> tuple[Actor, object | None]:
    """Who a command acts as, and that user (None without --as); a CommandError names a bad --as."""
    username = options.get("as_user")
    if not username:
        return Actor(name=f"{_login()}@{socket.gethostname()}"[:ACTOR_MAX_LENGTH]), None
    if "\x00" in username:
        raise CommandError("--as: must not contain NUL characters")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"--as: no user named {username!r}")
    if not user.is_active:
        raise CommandError(f"--as: user {username!r} is inactive")
    if not is_operator(user):
        raise CommandError(f"--as: {username!r} has no operator rights (staff, superuser or the operators group)")
    return Actor.of(user), user


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown"
