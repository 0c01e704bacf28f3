"""Hostile and careless request bodies get a 400 or 409 naming the field, never a 500 (PostgreSQL and SQLite)."""

from __future__ import annotations

import json

import pytest
from django.db import IntegrityError, transaction

from agents.models import Agent
from coordination.models import CoordinationEvent, Session, Workflow

pytestmark = pytest.mark.django_db


def post(client, url: str, body) -> object:
    return client.post(url, json.dumps(body) if not isinstance(body, str) else body, content_type="application/json")


def names(response) -> set[str]:
    data = response.json()
    return set(data) | set(data.get("errors", {}))


def test_renaming_an_agent_to_a_taken_name_is_a_conflict(operator_client, crew):
    dev = crew.agents.get(name="developer-1")
    response = operator_client.patch(f"/api/agents/{dev.pk}", {"name": "reviewer-1"}, format="json")
    assert response.status_code == 409, response.content
    assert "name" in names(response)
    dev.refresh_from_db()
    assert dev.name == "developer-1"


def nested(depth: int, leaf="x"):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [40, 5000])
def test_deeply_nested_files_are_a_400_naming_the_field(operator_client, crew, depth):
    files = "[" * depth + "]" * depth
    body = f'{{"session": {crew.pk}, "title": "Deep", "files": {files}}}'
    response = post(operator_client, "/api/tasks", body)
    assert response.status_code == 400, response.content
    assert "files" in names(response)
    assert not Workflow.objects.exists()


@pytest.mark.parametrize("depth", [40, 5000])
def test_deep_nesting_inside_runtime_config_is_a_400(operator_client, crew, depth):
    config = '{"summaries": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    body = f'{{"session": {crew.pk}, "role": "developer", "runtime_config": {config}}}'
    response = post(operator_client, "/api/agents", body)
    assert response.status_code == 400, response.content
    assert "runtime_config" in names(response)
    spawn = '{"name": "Deep", "members": [{"role": "developer", "runtime_config": ' + config + "}]}"
    response = post(operator_client, "/api/coordination/spawn", spawn)
    assert response.status_code == 400, response.content
    assert any(name.startswith("members") for name in names(response))
    assert not Session.objects.filter(name="Deep").exists()


NUL_CONFIG = {"summaries": {"merge": "a\u0000b"}}


def test_nul_inside_runtime_config_is_a_400_on_spawn_create_and_patch(operator_client, crew, workspace):
    events = CoordinationEvent.objects.count()
    spawn = {
        "name": "Nul",
        "workspace": str(workspace),
        "members": [{"role": "developer", "runtime_config": NUL_CONFIG}],
    }
    response = post(operator_client, "/api/coordination/spawn", spawn)
    assert response.status_code == 400, response.content
    assert any(name.startswith("members[0].runtime_config") for name in names(response)), response.json()

    response = post(
        operator_client, "/api/agents", {"session": crew.pk, "role": "tester", "runtime_config": NUL_CONFIG}
    )
    assert response.status_code == 400, response.content
    assert any(name.startswith("runtime_config") for name in names(response))

    dev = crew.agents.get(name="developer-1")
    response = operator_client.patch(f"/api/agents/{dev.pk}", {"runtime_config": NUL_CONFIG}, format="json")
    assert response.status_code == 400, response.content
    assert any(name.startswith("runtime_config") for name in names(response))
    assert CoordinationEvent.objects.count() == events


def test_workspace_outside_the_roots_is_a_400(operator_client, settings, tmp_path):
    outside = tmp_path / "elsewhere"
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOTS": [tmp_path / "roots"]}
    for workspace in (str(outside), "/etc/hive", str(tmp_path / "roots" / ".." / "elsewhere")):
        response = post(operator_client, "/api/coordination/spawn", {"name": "Escape", "workspace": workspace})
        assert response.status_code == 400, response.content
        assert "workspace" in names(response)
        assert "HIVE_WORKSPACE_ROOTS" in json.dumps(response.json())
    assert not outside.exists() and not Session.objects.exists()

    inside = tmp_path / "roots" / "shop"
    response = post(operator_client, "/api/coordination/spawn", {"name": "Inside", "workspace": str(inside)})
    assert response.status_code == 201, response.content
    assert inside.is_dir()


def test_a_symlink_out_of_the_roots_is_refused(operator_client, settings, tmp_path):
    root = tmp_path / "roots"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOTS": [root]}
    response = post(operator_client, "/api/coordination/spawn", {"name": "Link", "workspace": str(root / "link" / "x")})
    assert response.status_code == 400 and "workspace" in names(response)


def test_shell_script_placeholders_are_refused_by_the_api(operator_client, crew):
    config = {"argv": ["sh", "-c", "echo {title} > out.txt"]}
    response = post(
        operator_client,
        "/api/agents",
        {"session": crew.pk, "role": "developer", "runtime": "command", "runtime_config": config},
    )
    assert response.status_code == 400
    assert "HIVE_TITLE" in response.json()["errors"]["runtime_config.argv"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": 123}, "title"),
        ({"title": "x", "priority": "5"}, "priority"),
        ({"title": "x", "priority": 101}, "priority"),
        ({"title": "x", "priority": 1e400}, "priority"),
        ({"title": "x", "estimate_hours": "NaN"}, "estimate_hours"),
        ({"title": "x", "estimate_hours": "sNaN"}, "estimate_hours"),
        ({"title": "x", "estimate_hours": 10001}, "estimate_hours"),
        ({"title": "a\u0000b"}, "title"),
    ],
)
def test_work_input_is_strict(operator_client, crew, body, field):
    response = post(operator_client, "/api/tasks", {"session": crew.pk, **body})
    assert response.status_code == 400, response.content
    assert field in names(response)


def test_database_constraints_hold_the_limits(crew):
    agent = crew.agents.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(concurrency=Agent.CONCURRENCY_MAX + 1)
    workflow = Workflow.objects.create(session=crew, pattern="feature_delivery", title="Limits")
    with pytest.raises(IntegrityError), transaction.atomic():
        Workflow.objects.filter(pk=workflow.pk).update(priority=Workflow.PRIORITY_MAX + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Workflow.objects.filter(pk=workflow.pk).update(human_estimate_hours=Workflow.ESTIMATE_MAX_HOURS + 1)
