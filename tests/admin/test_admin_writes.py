"""Admin add and change pages save through the services: events written, the API's refusals on the form."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import Agent
from coordination.models import CoordinationEvent, Session, Task
from coordination.services import session_set_status

E = CoordinationEvent.Type


def add_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")


def agent_add(session, **overrides) -> dict:
    data = {
        "session": session.pk,
        "role": "tester",
        "name": "",
        "runtime": "scripted",
        "runtime_config": "{}",
        "capabilities": "[]",
        "concurrency": 1,
    }
    return {**data, **overrides}


def test_adding_an_agent_goes_through_the_service(admin_client, crew):
    response = admin_client.post(add_url(Agent), agent_add(crew))
    assert response.status_code == 302, response.context["adminform"].form.errors
    agent = Agent.objects.get(session=crew, name="tester-2")
    assert CoordinationEvent.objects.filter(type=E.AGENT_UPDATED, agent=agent).exists()


def test_adding_an_agent_to_a_completed_session_is_refused_like_the_api(admin_client, admin_user, crew):
    session_set_status(session=crew, status=Session.Status.COMPLETED)
    agents = Agent.objects.count()
    response = admin_client.post(add_url(Agent), agent_add(crew))
    assert response.status_code == 200
    form_errors = response.context["adminform"].form.errors
    client = APIClient()
    client.force_authenticate(admin_user)
    api = client.post("/api/agents", {"session": crew.pk, "role": "tester"}, format="json")
    assert api.status_code == 409
    assert form_errors["session"] == [api.json()["errors"]["session"]] == ["session is completed"]
    assert Agent.objects.count() == agents


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"concurrency": 33}, "concurrency"),
        (
            {"runtime": "command", "runtime_config": json.dumps({"argv": ["sh", "-c", "echo {title}"]})},
            "runtime_config",
        ),
        ({"runtime_config": "[" * 3000 + "]" * 3000}, "runtime_config"),
        ({"capabilities": json.dumps(["ok", 5])}, "capabilities"),
    ],
)
def test_bad_agent_input_is_a_field_error(admin_client, crew, overrides, field):
    events = CoordinationEvent.objects.count()
    response = admin_client.post(add_url(Agent), agent_add(crew, **overrides))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert CoordinationEvent.objects.count() == events


def test_adding_a_session_and_work_goes_through_the_services(admin_client, workspace):
    response = admin_client.post(add_url(Session), {"name": "Admin team", "goal": "g", "workspace": str(workspace)})
    assert response.status_code == 302, response.context["adminform"].form.errors
    session = Session.objects.get(name="Admin team")
    assert CoordinationEvent.objects.filter(type=E.SESSION_UPDATED, session=session).exists()

    change = reverse("admin:coordination_session_change", args=[session.pk])
    inlines = {f"{prefix}-{key}": 0 for prefix in ("agents", "workflows") for key in ("TOTAL_FORMS", "INITIAL_FORMS")}
    response = admin_client.post(change, {"name": "Renamed team", "goal": "g", **inlines})
    assert response.status_code == 302, response.context["adminform"].form.errors
    session.refresh_from_db()
    assert session.name == "Renamed team"
    assert CoordinationEvent.objects.filter(type=E.SESSION_UPDATED, session=session).count() == 2

    response = admin_client.post(
        add_url(Task),
        {"session": session.pk, "title": "Coupons", "pattern": "feature_delivery", "priority": 0, "files": "a.py"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    task = Task.objects.get(session=session)
    assert task.status == Task.Status.READY and task.files == ["a.py"]
    assert CoordinationEvent.objects.filter(type=E.WORK_SUBMITTED, session=session).exists()


def test_a_session_outside_the_workspace_roots_is_refused(admin_client, tmp_path, settings):
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOTS": [tmp_path / "roots"]}
    response = admin_client.post(add_url(Session), {"name": "Escape", "goal": "", "workspace": "/etc/hive"})
    assert response.status_code == 200
    assert "HIVE_WORKSPACE_ROOTS" in response.context["adminform"].form.errors["workspace"][0]
    assert not Session.objects.exists()
