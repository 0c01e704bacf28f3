"""API tokens in the admin: issue (the secret shown once, only its hash kept), list, revoke."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from coordination.models import ApiToken
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

ADD = "admin:coordination_apitoken_add"
LIST = "admin:coordination_apitoken_changelist"


def test_issuing_shows_the_secret_once_and_keeps_its_hash(admin_client, admin_user, operator, client):
    response = admin_client.post(
        reverse(ADD), {"user": operator.pk, "name": "Prometheus", "scope": "read", "expires_in_days": 30}
    )
    assert response.status_code == 200
    page = response.content.decode()
    secret = re.search(r'value="([0-9a-f]{64})" size="80" data-token-secret', page).group(1)
    assert "shown only this once" in page

    token = ApiToken.objects.get()
    assert (token.user, token.name, token.scope, token.created_by) == (operator, "Prometheus", "read", admin_user)
    assert secret not in token.digest
    listing = admin_client.get(reverse(LIST)).content.decode()
    assert "Prometheus" in listing and secret not in listing
    assert (
        secret not in admin_client.get(reverse("admin:coordination_apitoken_change", args=[token.pk])).content.decode()
    )
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 200


def test_the_add_form_explains_what_the_service_refuses(admin_client, viewer):
    response = admin_client.post(
        reverse(ADD), {"user": viewer.pk, "name": "", "scope": "operate", "expires_in_days": 5000}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"name", "scope", "expires_in_days"}
    assert errors["expires_in_days"] == ["at most 366 days (HIVE_TOKEN_MAX_TTL_DAYS)"]
    assert not ApiToken.objects.exists()
    response = admin_client.post(
        reverse(ADD), {"user": viewer.pk, "name": "x", "scope": "operate", "expires_in_days": 5}
    )
    assert response.context["adminform"].form.errors == {
        "scope": ["viewer has no operator rights, so the token can only read"]
    }


def test_revoke_action_stops_tokens_at_once(admin_client, admin_user, operator, client):
    secret = issue_token(operator, name="CI")
    issue_token(operator, name="already gone")
    gone = ApiToken.objects.get(name="already gone")
    admin_client.post(reverse(LIST), {"action": "revoke_tokens", ACTION_CHECKBOX_NAME: [gone.pk]})

    tokens = list(ApiToken.objects.values_list("pk", flat=True))
    response = admin_client.post(reverse(LIST), {"action": "revoke_tokens", ACTION_CHECKBOX_NAME: tokens}, follow=True)
    assert "Revoked 1 token(s); 1 already revoked." in response.content.decode()
    assert ApiToken.objects.get(name="CI").revoked_by == admin_user
    assert client.get("/api/agents", HTTP_AUTHORIZATION=f"Token {secret}").status_code == 401
