"""The API token page in a real browser: create a token, see its secret once, revoke it."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from coordination.models import ApiToken
from tests.conftest import issue_token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def api_status(secret: str) -> int:
    return Client().get("/api/coordination/status", HTTP_AUTHORIZATION=f"Token {secret}").status_code


def test_create_a_token_see_it_once_and_revoke_it(new_page, operator):
    page = new_page(operator)
    page.goto("/")
    page.click("nav >> text=API tokens")
    page.wait_for_selector("h1:has-text('API tokens')")

    page.fill("#id_name", "CI bot")
    page.select_option("#id_scope", "operate")
    page.select_option("#id_expires", "30")
    page.click("[data-token-form] button[type=submit]")

    secret = page.input_value("[data-token-secret]")
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert "shown only this once" in page.inner_text("[data-token-created]")
    assert api_status(secret) == 200
    token = ApiToken.objects.get()
    assert (token.name, token.scope, token.user) == ("CI bot", "operate", operator)

    # Seen once: the page does not show it again.
    page.goto("/tokens/")
    assert secret not in page.content()
    assert page.query_selector("[data-token-secret]") is None
    row = page.wait_for_selector('[data-token-row="CI bot"][data-token-state="active"]')

    page.once("dialog", lambda dialog: dialog.accept())
    row.query_selector("button:has-text('Revoke')").click()
    page.wait_for_selector('[data-token-row="CI bot"][data-token-state="revoked"]')
    assert "revoked; it no longer works" in page.inner_text(".messages")
    assert api_status(secret) == 401


def test_dismissing_the_question_keeps_the_token(new_page, operator):
    secret = issue_token(operator, name="phone")
    page = new_page(operator)
    page.goto("/tokens/")
    page.evaluate("window.__sameDocument = true")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click('[data-token-row="phone"] button:has-text("Revoke")')
    # Playwright's click waits for a navigation it starts; none started, the document is the same.
    assert page.evaluate("window.__sameDocument") is True
    assert ApiToken.objects.get(name="phone").revoked_at is None
    assert api_status(secret) == 200
