"""Every 4xx of the API has one shape, {detail, code, errors}; an empty spawn body spawns the default team."""

from __future__ import annotations

import json
import logging

import pytest

from coordination.models import Session


def assert_error_shape(response, status: int, *, code: str | None = None, field: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"detail", "code", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"] and isinstance(body["errors"], dict), body
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert field in body["errors"] and field in body["detail"], body
    return body


@pytest.mark.parametrize(
    "path, field",
    [
        ("/api/coordination/metrics?window=bad", "window"),
        ("/api/coordination/business-value?window=", "window"),
        ("/api/tasks?limit=abc", "limit"),
        ("/api/events?after=-1", "after"),
    ],
)
def test_bad_query_parameters_name_the_field(operator_client, path, field):
    assert_error_shape(operator_client.get(path), 400, code="invalid", field=field)


def test_nested_validation_errors_name_the_dotted_field(operator_client):
    body = {"name": "Crew", "members": [{"runtime": "scripted"}]}
    response = operator_client.post("/api/coordination/spawn", body, format="json")
    assert_error_shape(response, 400, code="invalid", field="members[0].role")


def test_errors_raised_by_the_framework_share_the_shape(db, operator_client, anon_client):
    assert_error_shape(anon_client.get("/api/tasks"), 401, code="not_authenticated")
    assert_error_shape(operator_client.get("/api/tasks/999999"), 404, code="not_found")
    assert_error_shape(operator_client.get("/api/no-such-endpoint"), 404, code="not_found")
    put = operator_client.put("/api/coordination/spawn", {}, format="json")
    assert_error_shape(put, 405, code="method_not_allowed")
    media = operator_client.post("/api/tasks", "x", content_type="text/plain")
    assert_error_shape(media, 415, code="unsupported_media_type")
    parse = operator_client.post("/api/tasks", b"{bad", content_type="application/json")
    assert_error_shape(parse, 400, code="parse_error")


def test_a_body_over_the_limit_is_413_in_the_error_shape(operator_client, settings, db):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "Crew", "goal": "x" * 2000})
    response = operator_client.post("/api/coordination/spawn", body, content_type="application/json")
    assert_error_shape(response, 413, code="too_large", field="body")
    assert not Session.objects.exists()


def test_an_empty_spawn_body_spawns_the_default_team(operator_client, settings, tmp_path):
    settings.HIVE = {**settings.HIVE, "TEAM_CONFIG": "", "WORKSPACE_ROOT": tmp_path}
    for body in ({}, None):
        if body is None:
            response = operator_client.post("/api/coordination/spawn")
        else:
            response = operator_client.post("/api/coordination/spawn", body, format="json")
        assert response.status_code == 201, response.content[:300]
    sessions = list(Session.objects.order_by("id"))
    assert [session.name for session in sessions] == ["Default team", "Default team"]
    assert sessions[0].workspace.startswith(str(tmp_path))
    agents = list(sessions[0].agents.values_list("role", "runtime"))
    assert {"developer", "reviewer", "tester"} <= {role for role, _ in agents}
    assert {runtime for _, runtime in agents} == {"scripted"}


def test_an_empty_spawn_body_spawns_the_configured_team_file(operator_client, settings, tmp_path, workspace):
    team = {"name": "Configured crew", "goal": "ship", "workspace": str(workspace), "members": [{"role": "developer"}]}
    path = tmp_path / "team.json"
    path.write_text(json.dumps(team))
    settings.HIVE = {**settings.HIVE, "TEAM_CONFIG": str(path)}
    response = operator_client.post("/api/coordination/spawn", {}, format="json")
    assert response.status_code == 201, response.content[:300]
    session = Session.objects.get()
    assert session.name == "Configured crew" and list(session.agents.values_list("role", flat=True)) == ["developer"]


def test_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/vnd.microsoft.icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"


def test_refused_writes_log_one_warning_line_each(operator_client, viewer_client, crew, settings, caplog):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    caplog.set_level(logging.INFO)
    refused = [
        operator_client.post("/api/tasks", {"session": crew.pk, "title": ""}, format="json"),
        operator_client.post("/api/tasks", {"session": crew.pk, "title": "x" * 2000}, format="json"),
        operator_client.post("/api/decisions/999999/answer", {"option": "approve"}, format="json"),
        operator_client.post("/api/tasks", b"{bad", content_type="application/json"),
        viewer_client.post("/api/tasks", {"session": crew.pk, "title": "x"}, format="json"),
    ]
    assert [r.status_code for r in refused] == [400, 413, 404, 400, 403]
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in problems] == ["WARNING"] * len(refused), [r.getMessage() for r in problems]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in problems)
