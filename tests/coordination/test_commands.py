"""spawn_team and submit_work: the intake commands call the same services as the API."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from coordination.models import CoordinationEvent, Session, Workflow


@pytest.fixture
def team_file(tmp_path, workspace):
    def write(config: dict | str):
        path = tmp_path / "team.json"
        path.write_text(config if isinstance(config, str) else json.dumps(config))
        return str(path)

    return write


def test_spawn_team_from_a_file_with_a_backlog(db, team_file, workspace, capsys):
    path = team_file(
        {
            "name": "Checkout team",
            "goal": "Ship coupons",
            "workspace": str(workspace),
            "members": [
                {"role": "developer", "runtime": "scripted", "runtime_config": {"duration_s": 0}},
                {"role": "reviewer", "name": "rita", "runtime": "scripted"},
            ],
            "backlog": [{"title": "Coupons", "pattern": "code_review_cycle", "estimate_hours": 3}],
        }
    )
    call_command("spawn_team", path)
    session = Session.objects.get(name="Checkout team")
    assert sorted(session.agents.values_list("name", flat=True)) == ["developer-1", "rita"]
    workflow = session.workflows.get()
    assert (workflow.pattern, workflow.human_estimate_hours) == ("code_review_cycle", 3)
    assert workflow.tasks.get().status == "ready"
    assert "spawned" in capsys.readouterr().out


@pytest.mark.parametrize(
    "config, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "must hold a JSON object"),
        ({"name": "T", "members": [{"role": "wizard"}]}, "unknown role"),
        ({"name": "T", "members": [{"role": "developer", "colour": "red"}]}, "unknown keys: colour"),
        ({"name": "T", "members": [{"role": "developer", "runtime": "command", "runtime_config": {}}]}, "argv"),
        ({"name": "", "members": []}, "name"),
    ],
)
def test_spawn_team_rejects_bad_files_with_a_message(db, team_file, workspace, config, message):
    if isinstance(config, dict):
        config = {"workspace": str(workspace), **config}
    with pytest.raises(CommandError, match=message):
        call_command("spawn_team", team_file(config))
    assert not Session.objects.exists() and not CoordinationEvent.objects.exists()


def test_spawn_team_missing_file(db):
    with pytest.raises(CommandError, match="no such file"):
        call_command("spawn_team", "/nonexistent/team.json")


def test_submit_work_by_session_name(crew, capsys):
    call_command(
        "submit_work",
        "Add search",
        "--session",
        crew.name,
        "--pattern",
        "pair_programming",
        "--estimate",
        "5",
        "--file",
        "shop/search.py",
        "--priority",
        "3",
    )
    workflow = Workflow.objects.get()
    assert (workflow.title, workflow.pattern, workflow.priority) == ("Add search", "pair_programming", 3)
    assert workflow.files == ["shop/search.py"]
    assert workflow.tasks.get().files == ["shop/search.py"]
    assert "submitted" in capsys.readouterr().out


def test_submit_work_errors_are_messages(crew):
    with pytest.raises(CommandError, match="no session"):
        call_command("submit_work", "X", "--session", "nope")
    with pytest.raises(CommandError, match="estimate_hours"):
        call_command("submit_work", "X", "--session", str(crew.pk), "--estimate", "soon")
    assert not Workflow.objects.exists()
