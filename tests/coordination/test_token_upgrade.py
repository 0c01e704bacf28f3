"""Upgrading from rest_framework.authtoken: plain keys become hashed tokens, and the raw keys are dropped."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from coordination.models import ApiToken

# Not in a test transaction: SQLite's schema editor (which the migration gets) refuses to run in one.
pytestmark = pytest.mark.django_db(transaction=True)

upgrade = importlib.import_module("coordination.migrations.0005_api_tokens")

OPERATOR_KEY = "0123456789abcdef0123456789abcdef01234567"
VIEWER_KEY = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def plain_tokens(operator, viewer):
    """The table rest_framework.authtoken left behind, with one key per user."""
    stamp = "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"
    created = timezone.now() - timedelta(days=400)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created {stamp}, user_id integer)")
        for key, user in [(OPERATOR_KEY, operator), (VIEWER_KEY, viewer)]:
            cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [key, created, user.pk])
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
            ["authtoken", "0004_alter_tokenproxy_options", created],
        )
    yield created
    with connection.cursor() as cursor:  # a failed test must not leave them for the next ones
        cursor.execute("DROP TABLE IF EXISTS authtoken_token")
        cursor.execute("DELETE FROM django_migrations WHERE app = 'authtoken'")


def test_plain_keys_keep_working_as_hashed_tokens_and_the_raw_keys_are_gone(plain_tokens, client, capsys):
    with connection.schema_editor() as editor:
        upgrade.move_plain_tokens(apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_migrations WHERE app = 'authtoken'")
        assert cursor.fetchone()[0] == 0
    tokens = {t.user.username: t for t in ApiToken.objects.select_related("user")}
    assert {name: t.scope for name, t in tokens.items()} == {"operator": "operate", "viewer": "read"}
    assert all(t.name == upgrade.MOVED_NAME for t in tokens.values())
    assert tokens["operator"].created == plain_tokens
    assert timedelta(days=89) < tokens["operator"].expiry - timezone.now() <= timedelta(days=90)
    assert OPERATOR_KEY not in {tokens["operator"].digest, tokens["operator"].token_key}

    assert client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {OPERATOR_KEY}").status_code == 200
    assert client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {VIEWER_KEY}").status_code == 200
    assert "Moved 2 API token(s) to hashed storage" in capsys.readouterr().out


def test_a_fresh_database_has_nothing_to_move():
    with connection.schema_editor() as editor:
        upgrade.move_plain_tokens(apps, editor)
    assert not ApiToken.objects.exists()
