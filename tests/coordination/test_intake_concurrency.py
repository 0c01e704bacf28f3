"""Copies of one delivery arriving at two web processes at once create nothing twice (PostgreSQL).

Each request runs in its own thread with its own connection. A barrier holds both right
after their first look for an earlier delivery, so both are past that check before either
commits: only the database's unique constraints can then keep the work single.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test import Client

from coordination.intake import github
from coordination.intake import services as intake
from coordination.models import IntakeDelivery, IntakeSource, Workflow

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent web processes need PostgreSQL"),
]

FIXTURES = Path(__file__).parent / "fixtures" / "github"
SECRET = "concurrency secret"


def hold_first_calls(monkeypatch, target, name: str, parties: int = 2) -> None:
    """Make the first call of `target.name` in each thread wait until every thread has made it."""
    barrier = threading.Barrier(parties, timeout=10)
    original = getattr(target, name)
    waited = threading.local()

    def held(*args, **kwargs):
        result = original(*args, **kwargs)
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return result

    monkeypatch.setattr(target, name, held)


def in_parallel(*requests) -> list:
    responses: list = [None] * len(requests)
    errors: list = []

    def run(index, request):
        try:
            responses[index] = request()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return responses


@pytest.fixture
def github_source(monkeypatch, crew):
    monkeypatch.setenv("HIVE_CONCURRENCY_SECRET", SECRET)
    return IntakeSource.objects.create(
        name="gh", slug="gh", kind="github", session=crew, label="hive", secret_env="HIVE_CONCURRENCY_SECRET"
    )


def github_post(body: bytes, *, event: str, delivery: str):
    return lambda: Client().post(
        "/api/intake/gh",
        data=body,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT=event,
        HTTP_X_GITHUB_DELIVERY=delivery,
        HTTP_X_HUB_SIGNATURE_256=github.sign(secret=SECRET.encode(), body=body),
    )


def test_one_delivery_at_two_processes_runs_once(github_source, monkeypatch):
    hold_first_calls(monkeypatch, github, "parse")
    body = (FIXTURES / "issues-opened-labelled.json").read_bytes()
    delivery = str(uuid.uuid4())
    responses = in_parallel(
        github_post(body, event="issues", delivery=delivery), github_post(body, event="issues", delivery=delivery)
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert Workflow.objects.count() == 1 and IntakeDelivery.objects.count() == 1


def test_opened_and_labeled_at_once_make_one_workflow(github_source, monkeypatch):
    hold_first_calls(monkeypatch, intake, "_tracked")
    opened = json.loads((FIXTURES / "issues-opened-labelled.json").read_bytes())
    labeled = json.dumps({**opened, "action": "labeled", "label": opened["issue"]["labels"][0]}).encode()
    responses = in_parallel(
        github_post(json.dumps(opened).encode(), event="issues", delivery=str(uuid.uuid4())),
        github_post(labeled, event="issues", delivery=str(uuid.uuid4())),
    )
    assert sorted(r.status_code for r in responses) == [200, 201]
    assert Workflow.objects.count() == 1
    assert sorted(IntakeDelivery.objects.values_list("outcome", flat=True)) == ["ignored", "work_created"]


def test_one_idempotency_key_at_two_processes_creates_once(crew, monkeypatch):
    source = IntakeSource.objects.create(name="json", slug="json", kind="json", session=crew)
    token = intake.token_issue(source=source)
    hold_first_calls(monkeypatch, intake, "_tracked")
    body = json.dumps({"title": "Once only"}).encode()

    def post():
        return Client().post(
            "/api/intake/json",
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_IDEMPOTENCY_KEY="k-1",
        )

    first, second = in_parallel(post, post)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert sorted([first.has_header("Idempotent-Replayed"), second.has_header("Idempotent-Replayed")]) == [False, True]
    assert Workflow.objects.count() == 1
