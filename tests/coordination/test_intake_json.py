"""The generic JSON intake: its own bearer token (stored hashed) and an Idempotency-Key."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.test import Client

from coordination.intake import services as intake
from coordination.models import CoordinationEvent, IntakeDelivery, IntakeSource, Workflow
from tests.conftest import issue_token

E = CoordinationEvent.Type


@pytest.fixture
def source(crew):
    return IntakeSource.objects.create(
        name="Helpdesk", slug="helpdesk", kind=IntakeSource.Kind.JSON, session=crew, pattern="ci_cd", priority=-3
    )


@pytest.fixture
def token(source):
    return intake.token_issue(source=source)


def post(body, *, token: str | None, key: str | None = "ticket-1041", slug: str = "helpdesk", **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client().post(f"/api/intake/{slug}", data=data, content_type="application/json", **headers)


def counts() -> tuple[int, int, int]:
    return CoordinationEvent.objects.count(), IntakeDelivery.objects.count(), Workflow.objects.count()


def assert_refused(response, status: int, code: str, before, *, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["detail"], body
    if field is not None:
        assert field in body["errors"], body
    assert counts() == before
    return body


TICKET = {
    "title": "Checkout times out for baskets over 200 items",
    "description": "Reported by three customers this morning.",
    "url": "https://helpdesk.example.com/tickets/1041",
    "files": ["shop/checkout.py"],
}


def test_the_token_is_stored_only_as_its_hash(source):
    token = intake.token_issue(source=source)
    source.refresh_from_db()
    assert token.startswith("hvi_") and len(token) > 40
    assert source.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(list(IntakeSource.objects.values()), default=str)
    assert source.token_hint == token[:10]


def test_work_arrives_once_with_the_source_defaults(source, token):
    response = post(TICKET, token=token)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["outcome"] == "work_created" and "Idempotent-Replayed" not in response
    workflow = Workflow.objects.get(pk=body["workflow"]["id"])
    assert (workflow.session, workflow.pattern, workflow.priority) == (source.session, "ci_cd", -3)
    assert workflow.source_url == "https://helpdesk.example.com/tickets/1041"
    assert workflow.files == ["shop/checkout.py"]
    event = CoordinationEvent.objects.get(type=E.INTAKE_WORK_CREATED)
    assert event.collaboration_data["source"] == "helpdesk"
    assert event.collaboration_data["delivery"] == body["delivery"]


def test_the_body_may_choose_pattern_priority_and_estimate(source, token):
    response = post({"title": "Fix", "pattern": "task_handoff", "priority": 9, "estimate_hours": "2.5"}, token=token)
    assert response.status_code == 201, response.content
    workflow = Workflow.objects.get()
    assert (workflow.pattern, workflow.priority, str(workflow.human_estimate_hours)) == ("task_handoff", 9, "2.50")


def test_the_same_key_returns_the_same_answer_and_creates_nothing(source, token):
    first = post(TICKET, token=token)
    before = counts()
    again = post(TICKET, token=token)
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert counts() == before


def test_the_same_key_with_another_body_is_refused(source, token):
    post(TICKET, token=token)
    before = counts()
    response = post({**TICKET, "title": "Something else"}, token=token)
    body = assert_refused(response, 422, "idempotency_key_reused", before, field="Idempotency-Key")
    assert "ticket-1041" in body["detail"]


def test_the_same_item_under_a_new_key_names_its_workflow(source, token):
    first = post(TICKET, token=token).json()
    second = post(TICKET, token=token, key="ticket-1041-retry")
    assert second.status_code == 200
    assert second.json()["outcome"] == "ignored"
    assert second.json()["workflow"]["id"] == first["workflow"]["id"]
    assert Workflow.objects.count() == 1


def test_authentication(source, token, operator):
    before = counts()
    missing = post(TICKET, token=None)
    assert_refused(missing, 401, "token_invalid", before, field="Authorization")
    assert missing["WWW-Authenticate"] == 'Bearer realm="intake"'
    assert_refused(post(TICKET, token="hvi_guess"), 401, "token_invalid", before)
    # The API's user tokens are not intake tokens.
    api_token = issue_token(operator)
    assert_refused(post(TICKET, token=None, HTTP_AUTHORIZATION=f"Token {api_token}"), 401, "token_invalid", before)
    assert_refused(post(TICKET, token=api_token), 401, "token_invalid", before)


def test_a_new_token_retires_the_old_one(source, token):
    fresh = intake.token_issue(source=source)
    before = counts()
    assert_refused(post(TICKET, token=token), 401, "token_invalid", before)
    assert post(TICKET, token=fresh).status_code == 201


def test_a_source_without_a_token_answers_503(source):
    assert_refused(post(TICKET, token="hvi_anything"), 503, "intake_not_configured", counts())


@pytest.mark.parametrize(
    "body, field",
    [
        ({"description": "no title"}, "title"),
        ({"title": "x", "pattern": "waterfall"}, "pattern"),
        ({"title": "x", "priority": 1000}, "priority"),
        ({"title": "x", "url": "javascript:alert(1)"}, "url"),
        ({"title": "x", "files": "shop.py"}, "files"),
        (b"{oops", "body"),
        (b'"just a string"', "body"),
    ],
)
def test_a_bad_body_is_refused_by_field(source, token, body, field):
    assert_refused(post(body, token=token), 400, "invalid", counts(), field=field)


@pytest.mark.parametrize("key, reason", [(None, "required"), ("  ", "required"), ("k" * 201, "at most 200")])
def test_the_idempotency_key_is_required(source, token, key, reason):
    body = assert_refused(post(TICKET, token=token, key=key), 400, "invalid", counts(), field="Idempotency-Key")
    assert reason in body["errors"]["Idempotency-Key"]


def test_a_github_source_takes_no_token(crew, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s")
    github = IntakeSource.objects.create(
        name="gh", slug="gh", kind=IntakeSource.Kind.GITHUB, session=crew, label="hive", secret_env="HOOK_SECRET"
    )
    with pytest.raises(intake.DomainError, match="only JSON sources"):
        intake.token_issue(source=github)


def test_a_body_over_the_upload_limit_is_a_413(source, token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = counts()
    body = {**TICKET, "description": "x" * 2000}
    assert_refused(post(body, token=token), 413, "payload_too_large", before, field="body")
