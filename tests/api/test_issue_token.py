"""The issue_token command creates a named, scoped, expiring token and prints its secret once."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from coordination.models import ApiToken

pytestmark = pytest.mark.django_db


def issue(*args) -> str:
    out = StringIO()
    call_command("issue_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def test_prints_a_working_secret_and_keeps_only_its_hash(operator, anon_client):
    secret = issue("operator", "--name", "CI bot", "--scope", "read", "--expires", "30d")

    token = ApiToken.objects.get(user=operator)
    assert (token.name, token.scope) == ("CI bot", "read")
    assert timedelta(days=30) - timedelta(minutes=1) < token.expiry - timezone.now() <= timedelta(days=30)
    assert secret not in {token.digest, token.token_key} and secret.startswith(token.token_key)
    assert anon_client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 200


def test_defaults_follow_the_users_rights_and_the_configured_lifetime(operator, viewer, settings):
    settings.HIVE_TOKEN_TTL_DAYS = 10
    issue("operator")
    issue("viewer")
    tokens = {t.user.username: t for t in ApiToken.objects.select_related("user")}
    assert tokens["operator"].scope == "operate" and tokens["viewer"].scope == "read"
    assert tokens["operator"].name == "API token"
    assert timedelta(days=9) < tokens["viewer"].expiry - timezone.now() <= timedelta(days=10)


def test_each_run_adds_a_token_and_rotate_revokes_the_old_one_of_that_name(operator, anon_client):
    first = issue("operator", "--name", "phone")
    other = issue("operator", "--name", "laptop")
    second = issue("operator", "--name", "phone")
    assert len({first, second, other}) == 3
    assert ApiToken.objects.filter(user=operator, revoked_at__isnull=True).count() == 3

    assert issue("operator", "--name", "phone", "--rotate", "--dry-run") == (
        "would create token 'phone' for operator (scope operate, expires in 90 days), "
        "and revoke 2 token(s) of that name"
    )
    rotated = issue("operator", "--name", "phone", "--rotate")

    def status(secret):
        return anon_client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {secret}").status_code

    assert (status(first), status(second), status(other), status(rotated)) == (401, 401, 200, 200)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost"], "no user named 'ghost'"),
        (["operator", "--expires", "soon"], "--expires: 'soon' is not a lifetime"),
        (["operator", "--expires", "0d"], "--expires: '0d' is not a lifetime"),
        (["operator", "--expires", "400d"], "expires: at most 366 days"),
        (["viewer", "--scope", "operate"], "scope: viewer has no operator rights"),
        (["operator", "--name", "  "], "name: required"),
    ],
)
def test_bad_requests_are_clear_errors_and_create_nothing(operator, viewer, args, message):
    with pytest.raises(CommandError, match=message):
        issue(*args)
    assert not ApiToken.objects.exists()
