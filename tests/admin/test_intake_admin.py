"""Intake sources are configured in the admin; tokens are shown once; deliveries are read-only."""

from __future__ import annotations

import hashlib
import json
import re

from django.test import Client
from django.urls import reverse

from coordination.models import IntakeDelivery, IntakeSource

from .test_admin import change, changelist, run_action


def source_form(crew, **fields) -> dict:
    return {
        "name": "Shop issues",
        "slug": "shop-issues",
        "kind": "github",
        "active": "on",
        "session": crew.pk,
        "pattern": "feature_delivery",
        "priority": "0",
        "estimate_hours": "",
        "label": "hive",
        "comment_command": "/hive retry",
        "secret_env": "SHOP_WEBHOOK_SECRET",
        **fields,
    }


def test_a_github_source_needs_its_label_and_secret_variable(admin_client, crew):
    add = reverse("admin:coordination_intakesource_add")
    response = admin_client.post(add, source_form(crew, label="", secret_env="lower-case", pattern="waterfall"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "label" in errors and "capital letters" in errors["secret_env"][0] and "pattern" in errors
    assert not IntakeSource.objects.exists()

    response = admin_client.post(add, source_form(crew))
    assert response.status_code == 302, response.context["adminform"].form.errors
    source = IntakeSource.objects.get()
    assert source.created_by.username == "admin"


def test_the_list_says_where_to_point_the_webhook_and_whether_the_secret_is_set(admin_client, crew, monkeypatch):
    IntakeSource.objects.create(
        name="Shop issues", slug="shop-issues", kind="github", session=crew, label="hive", secret_env="SHOP_SECRET"
    )
    monkeypatch.delenv("SHOP_SECRET", raising=False)
    page = admin_client.get(changelist(IntakeSource)).content.decode()
    assert "POST /api/intake/shop-issues" in page
    assert "NOT SET in this process" in page
    monkeypatch.setenv("SHOP_SECRET", "x")
    assert "</code>: set" in admin_client.get(changelist(IntakeSource)).content.decode()


def test_issuing_a_token_asks_first_then_shows_it_once(admin_client, crew):
    json_source = IntakeSource.objects.create(name="Helpdesk", slug="helpdesk", kind="json", session=crew)
    github_source = IntakeSource.objects.create(
        name="gh", slug="gh", kind="github", session=crew, label="hive", secret_env="GH_SECRET"
    )
    confirm = run_action(admin_client, IntakeSource, "issue_tokens", [json_source, github_source])
    text = confirm.content.decode()
    assert "replaces the current one" in text and "1 GitHub source(s) selected are left alone" in text
    json_source.refresh_from_db()
    assert json_source.token_hash == ""  # nothing issued before the confirmation

    shown = run_action(admin_client, IntakeSource, "issue_tokens", [json_source], apply="Issue new tokens")
    token = re.search(r"<code data-intake-token>(hvi_[^<]+)</code>", shown.content.decode()).group(1)
    json_source.refresh_from_db()
    assert json_source.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in admin_client.get(change(json_source)).content.decode()
    assert json_source.token_hint in admin_client.get(changelist(IntakeSource)).content.decode()

    response = Client().post(
        "/api/intake/helpdesk",
        data=json.dumps({"title": "From the helpdesk"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IDEMPOTENCY_KEY="t-1",
    )
    assert response.status_code == 201, response.content


def test_deliveries_are_listed_and_read_only(admin_client, crew):
    source = IntakeSource.objects.create(name="Helpdesk", slug="helpdesk", kind="json", session=crew)
    delivery = IntakeDelivery.objects.create(
        source=source,
        key="k",
        event="json",
        item_url="https://helpdesk.example.com/tickets/7",
        outcome="ignored",
        detail="https://helpdesk.example.com/tickets/7 is already work",
        body_sha256="0" * 64,
        response_status=200,
    )
    page = admin_client.get(changelist(IntakeDelivery)).content.decode()
    assert "is already work" in page and 'href="https://helpdesk.example.com/tickets/7"' in page
    assert admin_client.get(change(delivery)).status_code == 200
    assert admin_client.post(change(delivery), {"detail": "rewritten"}).status_code == 403
    assert admin_client.get(reverse("admin:coordination_intakedelivery_add")).status_code == 403
