"""Every API write records who made it: the events it writes carry the user and the token they used."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from coordination.models import CoordinationEvent, Decision, Session, Task
from coordination.services import WorkSpec, agent_pause, task_cancel, work_submit
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

TOKEN_NAME = "CI bot"


@pytest.fixture
def objects(crew):
    workflow = work_submit(session=crew, work=WorkSpec(title="Add search", estimate_hours=4))
    task = Task.objects.get(workflow=workflow)
    agent = crew.agents.order_by("id").first()
    decision = Decision.objects.create(
        session=crew,
        kind=Decision.Kind.OTHER,
        question="Go?",
        options=[{"key": "approve", "label": "Approve"}, {"key": "reject", "label": "Reject"}],
        default_option="reject",
        deadline=timezone.now() + timedelta(hours=1),
    )
    return {"session": crew, "task": task, "agent": agent, "decision": decision}


def _paused_session(o):
    Session.objects.filter(pk=o["session"].pk).update(status=Session.Status.PAUSED)


def _paused_agent(o):
    agent_pause(agent=o["agent"])


def _cancelled_task(o):
    task_cancel(task=o["task"])


# (method, path, body, setup): every write operation of the API, in a state where it succeeds.
WRITES = {
    "coordination_spawn_create": ("post", "/api/coordination/spawn", {"name": "Another crew"}, None),
    "agents_create": ("post", "/api/agents", {"session": "{session}", "role": "tester"}, None),
    "agents_partial_update": ("patch", "/api/agents/{agent}", {"capabilities": ["python"]}, None),
    "agents_pause_create": ("post", "/api/agents/{agent}/pause", {}, None),
    "agents_resume_create": ("post", "/api/agents/{agent}/resume", {}, _paused_agent),
    "agents_restart_create": ("post", "/api/agents/{agent}/restart", {}, None),
    "agents_bulk_create": ("post", "/api/agents/bulk", {"ids": ["{agent}"], "action": "pause"}, None),
    "sessions_pause_create": ("post", "/api/sessions/{session}/pause", {}, None),
    "sessions_resume_create": ("post", "/api/sessions/{session}/resume", {}, _paused_session),
    "sessions_complete_create": ("post", "/api/sessions/{session}/complete", {}, None),
    "tasks_create": ("post", "/api/tasks", {"session": "{session}", "title": "More work"}, None),
    "tasks_retry_create": ("post", "/api/tasks/{task}/retry", {}, _cancelled_task),
    "tasks_cancel_create": ("post", "/api/tasks/{task}/cancel", {}, None),
    "decisions_answer_create": ("post", "/api/decisions/{decision}/answer", {"option": "approve"}, None),
    "validation_runs_create": ("post", "/api/validation-runs", {"minutes": 1, "faults": ["kill"]}, None),
}
# Writes not made by a person: an intake is signed by its source and is recorded as that source.
NOT_PERSONAL = {"intake_receive"}


def fill(value, objects):
    if isinstance(value, str) and value.startswith("{"):
        return objects[value.strip("{}")].pk
    if isinstance(value, list):
        return [fill(v, objects) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, objects) for k, v in value.items()}
    return value


def test_every_write_operation_of_the_schema_is_walked():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    writes = {
        operation["operationId"]
        for methods in schema["paths"].values()
        for method, operation in methods.items()
        if method in ("post", "put", "patch", "delete")
    }
    assert writes == set(WRITES) | NOT_PERSONAL


@pytest.mark.parametrize("credential", ["token", "session"])
@pytest.mark.parametrize("operation", sorted(WRITES))
def test_api_writes_record_their_actor(operation, credential, operator, objects, workspace):
    method, path, body, setup = WRITES[operation]
    if setup:
        setup(objects)
    url = path.format(**{name: obj.pk for name, obj in objects.items()})
    body = fill(body, objects)
    if operation == "coordination_spawn_create":
        body["workspace"] = str(workspace)
    client = APIClient()
    if credential == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(operator, name=TOKEN_NAME)}")
    else:
        client.force_login(operator)
    before = CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    response = getattr(client, method)(url, body, format="json")

    assert response.status_code in (200, 201, 202), response.content
    events = list(CoordinationEvent.objects.filter(id__gt=before))
    assert events, f"{operation} wrote no event"
    expected_token = TOKEN_NAME if credential == "token" else ""
    assert {(e.type, e.actor, e.actor_token) for e in events} == {(e.type, "operator", expected_token) for e in events}


def test_events_filter_by_actor(operator, objects, operator_client):
    someone = APIClient()
    someone.force_login(operator)
    someone.post(f"/api/agents/{objects['agent'].pk}/pause", {}, format="json")
    nobody_events = CoordinationEvent.objects.filter(actor="").count()
    assert nobody_events  # the fixtures' own events were written outside any request

    page = operator_client.get("/api/events", {"actor": "operator"}).json()

    assert [e["type"] for e in page["results"]] == ["agent_paused"]
    assert page["results"][0]["actor"] == "operator"
    assert page["results"][0]["actorToken"] == ""
    assert operator_client.get("/api/events", {"actor": "nobody-at-all"}).json()["results"] == []


def test_actor_filter_is_in_the_schema(operator_client):
    schema = operator_client.get("/api/schema/", {"format": "json"}).json()
    parameters = {p["name"] for p in schema["paths"]["/api/events"]["get"]["parameters"]}
    event = schema["components"]["schemas"]["Event"]["properties"]
    assert "actor" in parameters
    assert {"actor", "actorToken"} <= set(event)
