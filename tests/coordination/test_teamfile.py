"""spawn_team and submit_work answer every bad input with one line per problem, never a traceback.

The team file goes through the API's spawn serializer, so both give the same field-level messages.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from coordination.models import CoordinationEvent, Session, Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def write(tmp_path):
    def write(content: bytes | str | dict) -> str:
        path = tmp_path / "team.json"
        if isinstance(content, dict):
            content = json.dumps(content)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    return write


def refusal(*args) -> str:
    with pytest.raises(CommandError) as exc:
        call_command(*args)
    message = str(exc.value)
    assert "Traceback" not in message
    return message


def team(workspace, **extra) -> dict:
    return {"name": "T", "workspace": str(workspace), "members": [{"role": "developer"}], **extra}


@pytest.mark.parametrize(
    "change, line",
    [
        ({"members": [{"name": "no-role"}]}, "members[0].role: This field is required."),
        ({"members": [{"role": "developer", "concurrency": "x"}]}, "members[0].concurrency: must be a whole number"),
        ({"members": [{"role": "developer", "concurrency": 40}]}, "members[0].concurrency: must be between 1 and 32"),
        ({"backlog": [{"title": 123}]}, "backlog[0].title: must be a string"),
        ({"backlog": [{"title": "x", "priority": "abc"}]}, "backlog[0].priority: must be a whole number"),
        (
            {"backlog": [{"title": "x", "estimate_hours": "NaN"}]},
            "backlog[0].estimate_hours: A valid number is required.",
        ),
        ({"goal": "a\u0000b"}, "goal: Null characters are not allowed."),
        ({"backlog": [{"title": "a\u0000b"}]}, "backlog[0].title: Null characters are not allowed."),
        ({"members": [{"role": "wizard"}]}, 'members[0].role: unknown role "wizard"'),
    ],
)
def test_each_problem_is_one_line_naming_the_field(write, workspace, change, line):
    message = refusal("spawn_team", write(team(workspace, **change)))
    assert line in message.splitlines()[0] or any(line in m for m in message.splitlines())
    assert not Session.objects.exists() and not CoordinationEvent.objects.exists()


def test_priority_too_large_for_a_float(write, workspace):
    path = write(
        json.dumps(team(workspace)).replace('"members"', '"backlog": [{"title": "x", "priority": 1e400}], "members"')
    )
    assert "backlog[0].priority: must be a whole number" in refusal("spawn_team", path)


def test_several_problems_give_several_lines(write, workspace):
    message = refusal("spawn_team", write(team(workspace, members=[{"role": "wizard", "concurrency": 0}])))
    assert len(message.splitlines()) == 2


@pytest.mark.parametrize(
    "content, text",
    [
        (b'{"name": "\xff\xfe"}', "is not UTF-8 text"),
        ("{not json", "is not valid JSON"),
        ('{"name": "T", "members": ' + "[" * 5000 + "]" * 5000 + "}", "members: nested more than 32 levels deep"),
    ],
)
def test_unreadable_files(write, content, text):
    assert text in refusal("spawn_team", write(content))


def test_a_directory_as_the_file(tmp_path):
    assert "is a directory" in refusal("spawn_team", str(tmp_path))


def test_team_file_and_api_give_the_same_messages(write, workspace, operator):
    body = team(workspace, members=[{"role": "developer", "concurrency": "x"}], backlog=[{"title": 123}])
    lines = set(refusal("spawn_team", write(body)).splitlines())
    client = APIClient()
    client.force_authenticate(operator)
    response = client.post("/api/coordination/spawn", body, format="json")
    assert response.status_code == 400
    api_lines = {f"{field}: {reason}" for field, reason in response.json()["errors"].items()}
    assert lines == api_lines


@pytest.mark.parametrize(
    "args, text",
    [
        (["--estimate", "NaN"], "estimate_hours: A valid number is required."),
        (["--estimate", "sNaN"], "estimate_hours: A valid number is required."),
        (["--estimate", "1e400"], "estimate_hours:"),
        (["--estimate", "-1"], "estimate_hours: must be between 0 and 10000 hours"),
        (["--description", "a\u0000b"], "description: Null characters are not allowed."),
        (["--priority", "500"], "priority: must be between -100 and 100"),
    ],
)
def test_submit_work_refusals_are_messages(crew, args, text):
    assert text in refusal("submit_work", "Title", "--session", str(crew.pk), *args)
    assert not Workflow.objects.exists()


def test_submit_work_nul_in_title_and_session(crew):
    assert "title: Null characters are not allowed." in refusal("submit_work", "a\u0000b", "--session", str(crew.pk))
    assert "--session" in refusal("submit_work", "x", "--session", "a\u0000b")
    assert "no session" in refusal("submit_work", "x", "--session", "²")
