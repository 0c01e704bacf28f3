"""Agents, sessions, workflows, tasks, events and decisions through the API."""

from __future__ import annotations

import pytest

from coordination.models import CoordinationEvent, Decision, Session, Task, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db


def fields_of(response) -> set[str]:
    data = response.json()
    return set(data) | set(data.get("errors", {}))


# --- agents ---------------------------------------------------------------------------


def test_agent_create_update_and_actions(crew, operator_client):
    response = operator_client.post(
        "/api/agents", {"session": crew.pk, "role": "tester", "capabilities": ["pytest"]}, format="json"
    )
    assert response.status_code == 201, response.content
    agent = response.json()
    assert agent["name"] == "tester-2" and agent["simulated"] is True and agent["session"] == crew.pk
    assert CoordinationEvent.objects.filter(agent_id=agent["id"], type="agent_updated").exists()

    url = f"/api/agents/{agent['id']}"
    updated = operator_client.patch(url, {"concurrency": 3, "name": "qa-bot"}, format="json").json()
    assert (updated["concurrency"], updated["name"]) == (3, "qa-bot")

    paused = operator_client.post(f"{url}/pause", {"reason": "flaky"}, format="json").json()
    assert (paused["status"], paused["status_reason"]) == ("paused", "flaky")
    again = operator_client.post(f"{url}/pause", {}, format="json")
    assert again.status_code == 409 and "status" in fields_of(again)
    assert operator_client.post(f"{url}/resume").json()["status"] == "idle"
    assert operator_client.post(f"{url}/restart").json()["status"] == "idle"

    performance = operator_client.get(f"{url}/performance?window=7d")
    assert performance.status_code == 200 and performance.json()["completed"] == 0
    assert "window" in fields_of(operator_client.get(f"{url}/performance?window=year"))


def test_agent_in_an_unknown_session_is_a_404(crew, operator_client):
    response = operator_client.post("/api/agents", {"session": 999999, "role": "tester"}, format="json")
    assert response.status_code == 404, response.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "tester"}, "session"),
        ({"session": 0, "role": "tester"}, "session"),
        ({"session": "{session}", "role": "wizard"}, "role"),
        ({"session": "{session}", "role": "tester", "concurrency": 0}, "concurrency"),
        ({"session": "{session}", "role": "tester", "runtime": "llm", "runtime_config": {}}, "runtime_config"),
    ],
)
def test_agent_create_validation(crew, operator_client, body, field):
    body = {k: (crew.pk if v == "{session}" else v) for k, v in body.items()}
    response = operator_client.post("/api/agents", body, format="json")
    assert response.status_code == 400, response.content
    assert any(name.startswith(field) for name in fields_of(response)), response.json()


def test_agent_duplicate_name_conflicts(crew, operator_client):
    response = operator_client.post("/api/agents", {"session": crew.pk, "role": "tester", "name": "tester-1"})
    assert response.status_code == 409 and "name" in fields_of(response)


def test_agent_update_validation(crew, operator_client):
    agent = crew.agents.first()
    response = operator_client.patch(f"/api/agents/{agent.pk}", {"concurrency": 50}, format="json")
    assert response.status_code == 400 and "concurrency" in fields_of(response)
    response = operator_client.patch(f"/api/agents/{agent.pk}", {"runtime_config": {"duration_s": -1}}, format="json")
    assert response.status_code == 400 and any(f.startswith("runtime_config") for f in fields_of(response))


def test_agents_bulk(crew, operator_client):
    ids = list(crew.agents.order_by("id").values_list("id", flat=True)[:3])
    operator_client.post(f"/api/agents/{ids[0]}/pause")
    response = operator_client.post("/api/agents/bulk", {"ids": ids, "action": "pause"}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["changed"] == 2
    assert [r["ok"] for r in data["results"]] == [False, True, True]
    assert all(r["agent"]["status"] == "paused" for r in data["results"])
    missing = operator_client.post("/api/agents/bulk", {"ids": [ids[0], 987654], "action": "resume"}, format="json")
    assert missing.status_code == 404 and "987654" in missing.json()["detail"]
    bad = operator_client.post("/api/agents/bulk", {"ids": ids, "action": "explode"}, format="json")
    assert bad.status_code == 400 and "action" in fields_of(bad)


def test_agent_list_filters_and_ordering(crew, viewer_client):
    data = viewer_client.get(f"/api/agents?session={crew.pk}&role=developer&ordering=-name").json()
    assert data["count"] == 2
    assert [a["name"] for a in data["results"]] == ["developer-2", "developer-1"]
    assert viewer_client.get("/api/agents?limit=2").json()["next"]


# --- sessions, workflows, tasks ------------------------------------------------------------


def test_session_transitions(crew, operator_client):
    url = f"/api/sessions/{crew.pk}"
    assert operator_client.post(f"{url}/resume").status_code == 409
    assert operator_client.post(f"{url}/pause").json()["status"] == "paused"
    assert operator_client.post(f"{url}/resume").json()["status"] == "active"
    done = operator_client.post(f"{url}/complete").json()
    assert done["status"] == "completed" and done["completed_at"]
    assert operator_client.post(f"{url}/pause").status_code == 409
    assert operator_client.get("/api/sessions?status=completed").json()["count"] == 1


def test_submit_work_and_task_lifecycle(crew, operator_client, viewer_client):
    response = operator_client.post(
        "/api/tasks",
        {"session": crew.pk, "title": "Add login", "pattern": "code_review_cycle", "estimate_hours": "3"},
        format="json",
    )
    assert response.status_code == 201, response.content
    workflow = response.json()
    assert workflow["pattern"] == "code_review_cycle"
    assert [t["status"] for t in workflow["tasks"]] == ["ready"]
    task_id = workflow["tasks"][0]["id"]

    listed = viewer_client.get(f"/api/tasks?status=ready&role=developer&workflow={workflow['id']}").json()
    assert [t["id"] for t in listed["results"]] == [task_id]
    assert viewer_client.get(f"/api/workflows/{workflow['id']}").json()["tasks"][0]["id"] == task_id

    cancelled = operator_client.post(f"/api/tasks/{task_id}/cancel", {"reason": "not now"}, format="json").json()
    assert cancelled["status"] == "cancelled"
    assert operator_client.post(f"/api/tasks/{task_id}/cancel").status_code == 409
    retried = operator_client.post(f"/api/tasks/{task_id}/retry").json()
    assert retried["status"] == "ready"
    assert Workflow.objects.get(pk=workflow["id"]).status == "running"
    assert operator_client.post(f"/api/tasks/{task_id}/retry").status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x"}, "session"),
        ({"session": "{session}"}, "title"),
        ({"session": "{session}", "title": "x", "pattern": "waterfall"}, "pattern"),
        ({"session": "{session}", "title": "x", "priority": 1000}, "priority"),
        ({"session": "{session}", "title": "x", "estimate_hours": "-1"}, "estimate_hours"),
        ({"session": "{session}", "title": "x", "files": "a.py"}, "files"),
    ],
)
def test_submit_work_validation(crew, operator_client, body, field):
    body = {k: (crew.pk if v == "{session}" else v) for k, v in body.items()}
    response = operator_client.post("/api/tasks", body, format="json")
    assert response.status_code == 400
    assert field in fields_of(response), response.json()


def test_submit_to_closed_session_conflicts(crew, operator_client):
    operator_client.post(f"/api/sessions/{crew.pk}/complete")
    response = operator_client.post("/api/tasks", {"session": crew.pk, "title": "late"}, format="json")
    assert response.status_code == 409 and "session" in fields_of(response)


def test_not_found_is_404(viewer_client):
    for url in ("/api/agents/424242", "/api/tasks/424242", "/api/decisions/424242", "/api/workflows/424242"):
        assert viewer_client.get(url).status_code == 404


# --- decisions ----------------------------------------------------------------------------------


@pytest.fixture
def deadlock(db, workspace, settings, engine):
    """A review that always requests changes, with one review round allowed: a decision blocks the task."""
    settings.HIVE = {**settings.HIVE, "MAX_REVIEW_ROUNDS": 1}
    session = team_spawn(
        name="Stubborn",
        workspace=str(workspace),
        members=[
            MemberSpec(role="developer", runtime_config={"duration_s": 0}),
            MemberSpec(role="reviewer", runtime_config={"duration_s": 0, "script": {"review": ["changes_requested"]}}),
        ],
    )
    workflow = work_submit(session=session, work=WorkSpec(title="Refactor", pattern="code_review_cycle"))
    run_until_quiet(engine)
    decision = Decision.objects.get(workflow=workflow, status="open")
    assert decision.task.status == Task.Status.BLOCKED
    return decision


def test_answering_a_decision_resumes_the_blocked_task(deadlock, operator_client, viewer_client, engine):
    listed = viewer_client.get("/api/decisions").json()
    assert [d["id"] for d in listed["results"]] == [deadlock.pk]
    assert listed["results"][0]["options"][0] == {"key": "approve", "label": "Accept the change as it is"}

    url = f"/api/decisions/{deadlock.pk}/answer"
    bad = operator_client.post(url, {"option": "shrug"}, format="json")
    assert bad.status_code == 400 and "option" in fields_of(bad)
    assert operator_client.post(url, {}, format="json").status_code == 400

    response = operator_client.post(url, {"option": "another_round", "comment": "one more try"}, format="json")
    assert response.status_code == 200, response.content
    answered = response.json()
    assert (answered["status"], answered["answer"], answered["answered_by"]) == (
        "answered",
        "another_round",
        "operator",
    )
    task = Task.objects.get(pk=deadlock.task_id)
    assert task.status == Task.Status.COMPLETED
    workflow = Workflow.objects.get(pk=deadlock.workflow_id)
    assert workflow.status == "running" and workflow.human_interventions == 1
    follow_up = Task.objects.filter(workflow=workflow, step="implement").order_by("-id").first()
    assert follow_up.status == Task.Status.READY and follow_up.round == 2

    second = operator_client.post(url, {"option": "approve"}, format="json")
    assert second.status_code == 409 and "option" in fields_of(second)

    assert viewer_client.get("/api/decisions").json()["count"] == 0
    assert viewer_client.get("/api/decisions?status=all").json()["count"] == 1
    assert viewer_client.get(f"/api/decisions/{deadlock.pk}").json()["status"] == "answered"


# --- events ----------------------------------------------------------------------------------------


def test_events_cursor_returns_each_event_once(crew, viewer_client, engine):
    for index in range(3):
        work_submit(session=crew, work=WorkSpec(title=f"Item {index}"))
    run_until_quiet(engine)
    expected = list(CoordinationEvent.objects.order_by("id").values_list("id", flat=True))
    assert len(expected) > 20
    seen: list[int] = []
    url = "/api/events?limit=7"
    while url:
        page = viewer_client.get(url).json()
        seen.extend(event["id"] for event in page["results"])
        url = page["next"]
    assert seen == expected

    session_only = viewer_client.get(f"/api/events?session={crew.pk}&type=task_assigned,task_completed&limit=1000")
    types = {e["type"] for e in session_only.json()["results"]}
    assert types == {"task_assigned", "task_completed"}
    agent = crew.agents.get(role="reviewer")
    by_agent = viewer_client.get(f"/api/events?agent={agent.pk}").json()["results"]
    assert by_agent and all(e["agent"] == agent.pk for e in by_agent)
    after = viewer_client.get(f"/api/events?after={expected[-2]}").json()
    assert [e["id"] for e in after["results"]] == [expected[-1]] and after["next"] is None
    assert (
        viewer_client.get("/api/events?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z").json()["results"] == []
    )


@pytest.mark.parametrize("query", ["after=-1", "type=nope", "limit=0", "limit=5000", "since=yesterday"])
def test_events_bad_query(viewer_client, query):
    response = viewer_client.get(f"/api/events?{query}")
    assert response.status_code == 400
    field = query.split("=")[0]
    assert any(key == field or key.startswith(f"{field}[") for key in response.json()["errors"])


def test_session_list_is_paginated(db, viewer_client, workspace):
    for index in range(3):
        team_spawn(name=f"S{index}", workspace=str(workspace), members=[MemberSpec(role="developer")])
    page = viewer_client.get("/api/sessions?limit=2").json()
    assert page["count"] == Session.objects.count() and len(page["results"]) == 2 and page["next"]
