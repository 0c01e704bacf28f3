"""Shared checks for the coordination commands."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from coordination.exceptions import DomainError


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
