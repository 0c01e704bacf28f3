"""Commands that change state record who ran them: `--as USER`, or the account running the command."""

from __future__ import annotations

import getpass
import json
import logging
import socket
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from coordination.models import CoordinationEvent, Decision, Session

pytestmark = pytest.mark.django_db


def _events_after(before: int) -> list[CoordinationEvent]:
    return list(CoordinationEvent.objects.filter(id__gt=before))


def _last_id() -> int:
    return CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_submit_work_as_an_operator(crew, operator):
    before = _last_id()
    call_command("submit_work", "Add search", "--session", str(crew.pk), "--as", "operator")
    events = _events_after(before)
    assert events
    assert {(e.actor, e.actor_token) for e in events} == {("operator", "")}


def test_spawn_team_as_an_operator(operator, tmp_path, workspace):
    path = tmp_path / "team.json"
    path.write_text(json.dumps({"name": "Checkout", "workspace": str(workspace), "members": [{"role": "developer"}]}))
    call_command("spawn_team", str(path), "--as", "operator")
    session = Session.objects.get(name="Checkout")
    assert session.created_by == operator
    assert set(session.events.values_list("actor", flat=True)) == {"operator"}


def test_answer_decision_as_an_operator(crew, operator, capsys):
    decision = Decision.objects.create(
        session=crew,
        question="Ship it?",
        options=[{"key": "approve", "label": "Approve"}, {"key": "reject", "label": "Reject"}],
        default_option="reject",
        deadline=timezone.now() + timedelta(hours=1),
    )
    call_command("answer_decision", str(decision.pk), "approve", "--comment", "looks good", "--as", "operator")
    decision.refresh_from_db()
    assert (decision.status, decision.answer, decision.answered_by) == ("answered", "approve", operator)
    event = CoordinationEvent.objects.get(type=CoordinationEvent.Type.DECISION_ANSWERED)
    assert event.actor == "operator"
    assert "as operator" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already answered"):
        call_command("answer_decision", str(decision.pk), "reject", "--as", "operator")


def test_without_as_the_account_running_the_command_is_recorded(crew):
    before = _last_id()
    call_command("submit_work", "Add search", "--session", str(crew.pk))
    assert {e.actor for e in _events_after(before)} == {f"{getpass.getuser()}@{socket.gethostname()}"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nobody", "--as: no user named 'nobody'"),
        ("viewer", "--as: 'viewer' has no operator rights"),
    ],
)
def test_as_names_an_existing_operator(crew, viewer, name, message):
    before = _last_id()
    with pytest.raises(CommandError, match=message):
        call_command("submit_work", "Add search", "--session", str(crew.pk), "--as", name)
    assert _events_after(before) == []
    assert not crew.workflows.filter(title="Add search").exists()


def test_issue_token_as_an_operator_records_who_issued_it_and_never_the_secret(viewer, operator, capsys, caplog):
    caplog.set_level(logging.INFO)
    call_command("issue_token", "viewer", "--name", "phone", "--as", "operator")
    secret = capsys.readouterr().out.strip()
    assert viewer.auth_token_set.get().created_by == operator
    assert "API token 'phone' (read) issued for viewer by operator" in caplog.text
    assert secret and secret not in caplog.text + event_text()


def event_text() -> str:
    return "".join(str(row) for row in CoordinationEvent.objects.values_list("message", "collaboration_data"))


def test_demo_as_an_operator(operator, tmp_path, settings):
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOT": tmp_path / "ws"}
    call_command("demo", "--as", "operator", config_out=str(tmp_path / "team.json"), verbosity=0)
    assert set(CoordinationEvent.objects.values_list("actor", flat=True)) == {"operator"}
