"""API tokens: only a hash at rest, expiry and revocation, scopes, last use."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from coordination.access.authentication import HiveTokenAuthentication
from coordination.access.services import LAST_USED_PRECISION, token_issue, token_revoke
from coordination.exceptions import DomainError
from coordination.models import ApiToken
from coordination.permissions import OPERATORS_GROUP, READ_SCOPE_MESSAGE
from tests.conftest import issue_token

from .test_access import WRITES

pytestmark = pytest.mark.django_db

SAFE = {"get", "head", "options", "trace"}


def everything_in_the_database() -> str:
    """Every row of every table, as text."""
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dump.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dump)


def get(client, secret, url="/api/agents"):
    return client.get(url, HTTP_AUTHORIZATION=f"Token {secret}")


def test_the_secret_is_nowhere_in_the_database_or_the_log(operator, anon_client, caplog):
    caplog.set_level(logging.DEBUG)
    token, secret = token_issue(user=operator, name="CI bot", scope="operate")
    assert get(anon_client, secret).status_code == 200

    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    stored = everything_in_the_database()
    # knox keeps the first 15 characters to find the row; the rest exists only in the client's hands.
    assert secret not in stored and secret[15:] not in stored
    assert secret not in caplog.text and secret[15:] not in caplog.text
    assert token.digest == hashlib.sha512(secret.encode()).hexdigest()
    assert ApiToken.objects.get(digest=token.digest).token_key == secret[:15]


def test_expired_revoked_unknown_and_inactive_tokens_get_401(operator, anon_client):
    expired = issue_token(operator, name="old")
    ApiToken.objects.filter(name="old").update(expiry=timezone.now() - timedelta(seconds=1))
    revoked = issue_token(operator, name="lost phone")
    token_revoke(token=ApiToken.objects.get(name="lost phone"))
    live = issue_token(operator, name="live")

    answers = {name: get(anon_client, secret) for name, secret in [("expired", expired), ("revoked", revoked)]}
    assert answers["expired"].status_code == 401
    assert answers["expired"].json()["detail"].startswith("Token “old” expired on ")
    assert answers["revoked"].status_code == 401
    assert answers["revoked"].json()["detail"] == "Token “lost phone” was revoked."
    assert answers["revoked"].headers["WWW-Authenticate"] == "Token"
    # A secret that shares the stored prefix but not the rest is just as unknown.
    assert get(anon_client, live[:15] + "0" * 49).status_code == 401
    assert get(anon_client, live).status_code == 200
    operator.is_active = False
    operator.save(update_fields=["is_active"])
    assert get(anon_client, live).status_code == 401


def write_operations() -> list[tuple[str, str]]:
    """Every state-changing operation in the OpenAPI schema that API tokens authenticate, with ids filled in.

    (Intake endpoints authenticate their own senders, so they are not among them.)
    """
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method not in SAFE and {"tokenAuth": []} in (operation.get("security") or [])
    )


def test_the_write_list_of_the_access_tests_covers_the_schema():
    listed = {(method, re.sub(r"\{[^}]+\}", "1", url)) for method, url, _ in WRITES}
    assert set(write_operations()) <= listed | {("post", "/api/decisions/1/answer")}


def test_a_read_scoped_token_reads_but_gets_403_on_every_write(operator, anon_client, crew):
    secret = issue_token(operator, scope="read")
    assert get(anon_client, secret, "/api/coordination/status").status_code == 200
    operations = write_operations()
    assert len(operations) >= 14
    for method, path in operations:
        response = getattr(anon_client, method)(path, {}, format="json", HTTP_AUTHORIZATION=f"Token {secret}")
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["detail"] == READ_SCOPE_MESSAGE


def test_an_operate_token_writes_only_while_its_user_is_an_operator(operator, anon_client, crew):
    secret = issue_token(operator, scope="operate")
    pause = f"/api/sessions/{crew.pk}/pause"
    assert anon_client.post(pause, {}, format="json", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 200
    operator.groups.remove(Group.objects.get(name=OPERATORS_GROUP))
    resume = f"/api/sessions/{crew.pk}/resume"
    refused = anon_client.post(resume, {}, format="json", HTTP_AUTHORIZATION=f"Token {secret}")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Changing coordination state needs operator rights."


def test_a_viewer_cannot_hold_an_operate_token(viewer):
    with pytest.raises(DomainError) as caught:
        token_issue(user=viewer, name="sneaky", scope="operate")
    assert caught.value.errors == {"scope": "viewer has no operator rights, so the token can only read"}
    assert not ApiToken.objects.exists()


def test_last_use_is_recorded_at_most_once_a_minute(operator, anon_client):
    secret = issue_token(operator)
    token = ApiToken.objects.get()
    assert token.last_used_at is None
    get(anon_client, secret, "/api/coordination/status")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=5)
    get(anon_client, secret, "/api/coordination/status")
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.update(last_used_at=first - LAST_USED_PRECISION)
    get(anon_client, secret, "/api/coordination/status")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_token_authentication_costs_one_query_between_recorded_uses(operator, rf):
    secret = issue_token(operator)
    ApiToken.objects.update(last_used_at=timezone.now())
    request = rf.get("/api/agents", HTTP_AUTHORIZATION=f"Token {secret}")
    with CaptureQueriesContext(connection) as queries:
        user, token = HiveTokenAuthentication().authenticate(request)
    assert (user, token.name) == (operator, "test token")
    assert len(queries) == 1
