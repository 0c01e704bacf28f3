"""The GitHub webhook intake, driven with recorded deliveries (tests/coordination/fixtures/github/)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import Client

from coordination.intake.github import sign
from coordination.models import CoordinationEvent, IntakeDelivery, IntakeSource, Task, Workflow
from coordination.services import WorkSpec

FIXTURES = Path(__file__).parent / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"
SECRET_ENV = "HIVE_TEST_GITHUB_SECRET"
E = CoordinationEvent.Type


def recorded(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def source(crew, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return IntakeSource.objects.create(
        name="Shop issues",
        slug="shop-issues",
        kind=IntakeSource.Kind.GITHUB,
        session=crew,
        pattern="code_review_cycle",
        priority=5,
        label="hive",
        secret_env=SECRET_ENV,
    )


def deliver(
    body: bytes,
    *,
    event: str,
    delivery: str | None = None,
    secret: str | None = SECRET,
    signature: str | None = None,
    slug: str = "shop-issues",
    content_type: str = "application/json",
    **headers,
):
    """POST a delivery with the headers GitHub sends."""
    headers = {
        "HTTP_USER_AGENT": "GitHub-Hookshot/0b9c3b1",
        "HTTP_X_GITHUB_EVENT": event,
        "HTTP_X_GITHUB_DELIVERY": delivery or str(uuid.uuid4()),
        "HTTP_X_GITHUB_HOOK_ID": "531277146",
        "HTTP_X_GITHUB_HOOK_INSTALLATION_TARGET_TYPE": "repository",
        "HTTP_X_GITHUB_HOOK_INSTALLATION_TARGET_ID": "681234567",
        **headers,
    }
    if signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    elif secret is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = sign(secret=secret.encode(), body=body)
    return Client().post(f"/api/intake/{slug}", data=body, content_type=content_type, **headers)


def counts() -> tuple[int, int, int]:
    return CoordinationEvent.objects.count(), IntakeDelivery.objects.count(), Workflow.objects.count()


def assert_refused(response, status: int, code: str, before: tuple[int, int, int], *, field: str | None = None):
    """A refusal in the API's error shape that wrote nothing."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["detail"], body
    if field is not None:
        assert field in body["errors"], body
    assert counts() == before


# --- turning issues into work -----------------------------------------------------------------


def test_ping_is_answered_and_recorded(source):
    response = deliver(recorded("ping.json"), event="ping", delivery="d0c7c1a0-f9c8-11ef-8a6e-3c1f7a1b2c3d")
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "pong"
    delivery = IntakeDelivery.objects.get()
    assert (delivery.key, delivery.event, delivery.outcome) == ("d0c7c1a0-f9c8-11ef-8a6e-3c1f7a1b2c3d", "ping", "pong")
    event = CoordinationEvent.objects.filter(type=E.INTAKE_RECEIVED).get()
    assert "hook 531277146 for octo-org/shop" in event.message
    assert event.collaboration_data["zen"] == "Design for failure."


def test_issue_opened_with_the_label_becomes_work_with_a_link_back(source, operator):
    response = deliver(recorded("issues-opened-labelled.json"), event="issues")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["outcome"] == "work_created"
    workflow = Workflow.objects.get(pk=body["workflow"]["id"])
    assert workflow.session == source.session
    assert (workflow.title, workflow.pattern, workflow.priority) == (
        "Coupons: percentage discounts at checkout",
        "code_review_cycle",
        5,
    )
    assert workflow.source_url == "https://github.com/octo-org/shop/issues/42"
    assert "percentage coupons at checkout" in workflow.description
    assert workflow.description.endswith("GitHub issue octo-org/shop#42: https://github.com/octo-org/shop/issues/42")
    assert workflow.tasks.get().status == Task.Status.READY  # the crew picks it up like any work
    created = CoordinationEvent.objects.get(type=E.INTAKE_WORK_CREATED)
    assert created.workflow_id == workflow.pk and created.session_id == source.session_id
    assert created.collaboration_data["ref"] == "octo-org/shop#42"
    assert created.collaboration_data["sender"] == "monalisa"
    assert CoordinationEvent.objects.filter(type=E.WORK_SUBMITTED, workflow=workflow).exists()
    # The link back is shown where workflows are: the API and the session page.
    reader = Client()
    reader.force_login(operator)
    api = reader.get(f"/api/workflows/{workflow.pk}").json()
    assert api["source_url"] == "https://github.com/octo-org/shop/issues/42"


def test_the_session_page_links_the_work_to_its_issue(source, operator):
    deliver(recorded("issues-opened-labelled.json"), event="issues")
    client = Client()
    client.force_login(operator)
    page = client.get(f"/sessions/{source.session_id}/").content.decode()
    assert 'href="https://github.com/octo-org/shop/issues/42"' in page
    assert "↗ octo-org/shop#42" in page


def test_labeled_with_the_label_in_another_case_becomes_work(source):
    response = deliver(recorded("issues-labeled.json"), event="issues")
    assert response.status_code == 201, response.content
    assert Workflow.objects.get().source_url == "https://github.com/octo-org/shop/issues/57"


def test_labeled_with_another_label_is_recorded_and_does_nothing(source):
    payload = json.loads(recorded("issues-labeled.json"))
    payload["label"]["name"] = "bug"
    response = deliver(json.dumps(payload).encode(), event="issues")
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert "the label “bug” is not “hive”" in response.json()["detail"]
    assert not Workflow.objects.exists()
    assert CoordinationEvent.objects.filter(type=E.INTAKE_RECEIVED).count() == 1


def test_issue_opened_without_the_label_does_nothing(source):
    response = deliver(recorded("issues-opened-unlabelled.json"), event="issues")
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert not Workflow.objects.exists()


def test_opened_and_labeled_for_one_issue_make_one_workflow(source):
    opened = json.loads(recorded("issues-opened-labelled.json"))
    labeled = {**opened, "action": "labeled", "label": opened["issue"]["labels"][0]}
    first = deliver(json.dumps(opened).encode(), event="issues")
    second = deliver(json.dumps(labeled).encode(), event="issues")
    assert (first.status_code, second.status_code) == (201, 200)
    workflow = Workflow.objects.get()
    assert second.json()["workflow"]["id"] == workflow.pk
    assert f"already work, workflow #{workflow.pk}" in second.json()["detail"]


def test_a_form_encoded_delivery_is_read_from_its_payload_field(source):
    body = urlencode({"payload": recorded("issues-opened-labelled.json").decode()}).encode()
    response = deliver(body, event="issues", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201, response.content


def test_an_event_the_intake_does_not_read_is_recorded_as_ignored(source):
    response = deliver(b'{"ref": "refs/heads/main", "action": null}', event="push")
    assert response.status_code == 200
    assert "GitHub push event ignored" in response.json()["detail"]
    assert IntakeDelivery.objects.get().outcome == "ignored"


def test_the_api_token_authentication_does_not_apply(source):
    """A stray Authorization header does not turn a signed delivery into a 401."""
    response = deliver(recorded("ping.json"), event="ping", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 200, response.content


# --- comments ------------------------------------------------------------------------------------


def failed_issue_work(source) -> Workflow:
    """Issue #42 as work whose first task failed for good."""
    deliver(recorded("issues-opened-labelled.json"), event="issues")
    workflow = Workflow.objects.get()
    workflow.tasks.update(status=Task.Status.FAILED, attempt=3)
    return workflow


def test_retry_comment_by_a_member_queues_the_failed_task_again(source):
    workflow = failed_issue_work(source)
    response = deliver(recorded("issue-comment-retry.json"), event="issue_comment")
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "command_applied"
    task = workflow.tasks.get()
    assert task.status == Task.Status.READY and task.max_attempts > task.attempt
    event = CoordinationEvent.objects.get(type=E.INTAKE_COMMAND)
    assert event.collaboration_data["tasks"] == [task.pk]
    assert "@monalisa asked “/hive retry” on octo-org/shop#42" in event.message
    assert CoordinationEvent.objects.filter(type=E.TASK_RETRY_SCHEDULED, task=task).exists()


def test_retry_comment_by_someone_outside_the_repository_is_not_obeyed(source):
    workflow = failed_issue_work(source)
    response = deliver(recorded("issue-comment-retry-stranger.json"), event="issue_comment")
    assert response.json()["outcome"] == "ignored"
    assert "commands need an owner, member or collaborator" in response.json()["detail"]
    assert workflow.tasks.get().status == Task.Status.FAILED


def test_other_comments_and_comments_on_untracked_issues_do_nothing(source):
    payload = json.loads(recorded("issue-comment-retry.json"))
    untracked = deliver(json.dumps(payload).encode(), event="issue_comment")
    assert "the issue has no workflow" in untracked.json()["detail"]
    failed_issue_work(source)
    payload["comment"]["body"] = "Looks good to me, thanks! /hive retry"
    chatter = deliver(json.dumps(payload).encode(), event="issue_comment")
    assert "its first line is not “/hive retry”" in chatter.json()["detail"]
    assert Task.objects.get().status == Task.Status.FAILED


def test_comments_on_pull_requests_carry_no_command(source):
    failed_issue_work(source)
    payload = json.loads(recorded("issue-comment-retry.json"))
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/octo-org/shop/pulls/42"}
    response = deliver(json.dumps(payload).encode(), event="issue_comment")
    assert "a comment on a pull request" in response.json()["detail"]
    assert Task.objects.get().status == Task.Status.FAILED


def test_retry_with_nothing_failed_says_so(source):
    deliver(recorded("issues-opened-labelled.json"), event="issues")
    response = deliver(recorded("issue-comment-retry.json"), event="issue_comment")
    assert response.json()["outcome"] == "ignored"
    assert "no failed task to retry" in response.json()["detail"]


# --- refusals: a clear 4xx, nothing written --------------------------------------------------------


def test_a_redelivered_id_is_refused_and_does_nothing_twice(source):
    body = recorded("issues-opened-labelled.json")
    assert deliver(body, event="issues", delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958").status_code == 201
    before = counts()
    again = deliver(body, event="issues", delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert_refused(again, 409, "duplicate_delivery", before, field="X-GitHub-Delivery")
    assert "was already received" in again.json()["detail"]


@pytest.mark.parametrize(
    "signature",
    [
        None,  # no header at all
        "sha256=" + "0" * 64,
        "sha1=2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
        "sha256=not-hex-ünïcode",
    ],
)
def test_a_bad_or_missing_signature_is_refused(source, signature):
    before = counts()
    body = recorded("issues-opened-labelled.json")
    if signature is None:
        response = deliver(body, event="issues", secret=None)
    else:
        response = deliver(body, event="issues", signature=signature)
    assert_refused(response, 403, "signature_invalid", before, field="X-Hub-Signature-256")


def test_a_body_changed_after_signing_is_refused(source):
    body = recorded("issues-opened-labelled.json")
    signature = sign(secret=SECRET.encode(), body=body)
    tampered = body.replace(b"Coupons: percentage", b"Coupons: free")
    before = counts()
    assert_refused(deliver(tampered, event="issues", signature=signature), 403, "signature_invalid", before)


def test_a_signature_made_with_another_secret_is_refused(source):
    before = counts()
    response = deliver(recorded("ping.json"), event="ping", secret="an old secret")
    assert_refused(response, 403, "signature_invalid", before)


@pytest.mark.parametrize(
    "body, field",
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"\xff\xfe", "body"),
        (json.dumps({"action": "opened", "issue": {"number": 7}}).encode(), "issue.title"),
        (json.dumps({"action": "opened", "issue": {"number": "7", "title": "x"}}).encode(), "issue.number"),
    ],
)
def test_a_malformed_payload_is_refused_by_field(source, body, field):
    before = counts()
    assert_refused(deliver(body, event="issues"), 400, "invalid", before, field=field)


def test_missing_github_headers_are_named(source):
    before = counts()
    body = recorded("ping.json")
    assert_refused(deliver(body, event="ping", delivery=" "), 400, "invalid", before, field="X-GitHub-Delivery")
    assert_refused(deliver(body, event=""), 400, "invalid", before, field="X-GitHub-Event")


def test_a_source_without_its_secret_in_the_environment_answers_503(source, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    before = counts()
    response = deliver(recorded("ping.json"), event="ping")
    assert_refused(response, 503, "intake_not_configured", before)
    assert SECRET_ENV in response.json()["detail"]


def test_unknown_and_inactive_sources_are_404(source):
    before = counts()
    assert_refused(deliver(recorded("ping.json"), event="ping", slug="nope"), 404, "not_found", before)
    IntakeSource.objects.filter(pk=source.pk).update(active=False)
    assert_refused(deliver(recorded("ping.json"), event="ping"), 404, "not_found", before)


def test_work_refused_by_the_session_is_a_409_and_leaves_no_trace(source):
    source.session.status = "completed"
    source.session.save()
    before = counts()
    response = deliver(recorded("issues-opened-labelled.json"), event="issues")
    assert_refused(response, 409, "conflict", before, field="session")


def test_only_post_is_allowed(source):
    assert Client().get("/api/intake/shop-issues").status_code == 405


def test_work_spec_refuses_a_link_that_is_not_http(crew):
    from coordination.exceptions import DomainError
    from coordination.services import work_submit

    with pytest.raises(DomainError, match="http"):
        work_submit(session=crew, work=WorkSpec(title="x", source_url="javascript:alert(1)"))
