"""The console's API token page: create (the secret shown once), list, revoke."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from coordination.models import ApiToken
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

PAGE = "/tokens/"


def create(client, **fields):
    return client.post(PAGE, {"name": "CI bot", "scope": "read", "expires": 30, **fields})


def shown_secret(response) -> str | None:
    match = re.search(r'value="([0-9a-f]{64})" data-token-secret', response.content.decode())
    return match.group(1) if match else None


def test_the_page_needs_a_sign_in(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_create_shows_the_secret_once_and_it_works(client, operator):
    client.force_login(operator)
    response = create(client, scope="operate")
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = shown_secret(response)
    assert secret and "shown only this once" in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.name, token.scope, token.user, token.created_by) == ("CI bot", "operate", operator, operator)

    again = client.get(PAGE)
    assert secret not in again.content.decode() and shown_secret(again) is None
    assert 'data-token-row="CI bot" data-token-state="active"' in again.content.decode()
    assert client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 200


def test_bad_input_is_explained_and_creates_nothing(client, viewer):
    client.force_login(viewer)
    page = client.get(PAGE).content.decode()
    assert 'value="operate"' not in page  # a viewer is not offered write access
    response = create(client, name="", scope="operate", expires=9999)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"name", "scope", "expires"}
    assert shown_secret(response) is None and not ApiToken.objects.exists()


def test_the_owner_revokes_a_token_and_it_stops_working(client, viewer):
    client.force_login(viewer)
    secret = shown_secret(create(client))
    token = ApiToken.objects.get()
    response = client.post(reverse("console:token_revoke"), {"token": token.pk}, follow=True)
    assert "Token “CI bot” of viewer revoked" in response.content.decode()
    assert 'data-token-row="CI bot" data-token-state="revoked"' in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_by == viewer
    assert client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 401
    again = client.post(reverse("console:token_revoke"), {"token": token.pk}, follow=True)
    assert "Not revoked: token “CI bot” was already revoked" in again.content.decode()


def test_operators_see_and_revoke_everyones_tokens_viewers_only_their_own(client, operator, viewer):
    issue_token(viewer, name="viewer's phone")
    issue_token(operator, name="operator's CI")
    viewers, operators = ApiToken.objects.get(user=viewer), ApiToken.objects.get(user=operator)

    client.force_login(viewer)
    page = client.get(PAGE).content.decode()
    assert "viewer&#x27;s phone" in page and "operator&#x27;s CI" not in page
    assert client.post(reverse("console:token_revoke"), {"token": operators.pk}).status_code == 403
    assert client.post(reverse("console:token_revoke"), {"token": "no-such-token"}).status_code == 404

    client.force_login(operator)
    assert "viewer&#x27;s phone" in client.get(PAGE).content.decode()
    assert client.post(reverse("console:token_revoke"), {"token": viewers.pk}).status_code == 302
    viewers.refresh_from_db()
    operators.refresh_from_db()
    assert viewers.revoked_by == operator and operators.revoked_at is None
