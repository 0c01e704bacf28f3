"""The issue_token command creates, prints and rotates a user's API token."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def issue(*args) -> str:
    out = StringIO()
    call_command("issue_token", *args, stdout=out)
    return out.getvalue().strip()


def test_issue_keep_and_rotate(operator, anon_client):
    first = issue("operator")
    assert Token.objects.get(user=operator).key == first
    assert issue("operator") == first
    assert issue("operator", "--dry-run", "--rotate") == "would rotate the token of operator"
    assert Token.objects.get(user=operator).key == first
    rotated = issue("operator", "--rotate")
    assert rotated != first
    assert anon_client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {first}").status_code == 401
    assert anon_client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {rotated}").status_code == 200


def test_unknown_user_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        issue("ghost")
