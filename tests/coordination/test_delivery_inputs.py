"""Delivery inputs through every other entry point: team file, spawn_team, console form, admin, session update.

The API's own cases are in tests/api/test_delivery_inputs.py; each entry point here shares its validation.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from coordination.exceptions import DomainError
from coordination.models import MergeLock, Session, VerificationRun, Workflow
from coordination.services.sessions import session_update
from coordination.teamfile import team_spawn_from_config
from tests.coordination.gitrepos import make_repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def repo(tmp_path):
    return make_repository(tmp_path / "repo")


def write_team(tmp_path, **config) -> str:
    path = tmp_path / "team.json"
    path.write_text(json.dumps({"name": "File crew", "members": [{"role": "developer"}], **config}))
    return str(path)


def test_a_team_file_carries_the_repository_and_work_that_changes_nothing(tmp_path, repo):
    path = write_team(
        tmp_path,
        repository=str(repo),
        verify=[["python", "-c", "pass"]],
        backlog=[{"title": "Read only", "expects_change": False}],
    )
    call_command("spawn_team", path)
    session = Session.objects.get()
    assert (session.repository, session.verify) == (str(repo), [["python", "-c", "pass"]])
    assert session.target_branch == f"hive/{session.slug}/main"
    assert Workflow.objects.get().expects_change is False


@pytest.mark.parametrize(
    "config, message",
    [
        ({"repository": "/nowhere/at/all"}, "repository: must be inside a workspace root"),
        ({"target_branch": "main"}, "target_branch: checked out"),
        ({"verify": ["pytest"]}, r"verify\[0\]: each command must be an argv list"),
    ],
)
def test_spawn_team_refuses_bad_delivery_inputs_with_a_message(tmp_path, repo, config, message):
    config = {"repository": str(repo), **config}
    if config.get("target_branch") == "main":
        message = "target_branch: main is checked out in"
    with pytest.raises(CommandError, match=message):
        call_command("spawn_team", write_team(tmp_path, **config))
    assert not Session.objects.exists()


def test_unknown_keys_stay_refused_in_a_team_file(repo):
    with pytest.raises(DomainError) as caught:
        team_spawn_from_config({"name": "x", "repository": str(repo), "branch": "main"})
    assert "branch" in caught.value.errors["config"]


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


def test_the_spawn_form_takes_the_repository_and_shows_git_refusals_on_their_fields(console, repo, tmp_path):
    form = {"name": "Form crew", "workspace": str(tmp_path), "roles": ["developer"], "runtime": "scripted"}
    response = console.post(reverse("console:spawn"), {**form, "repository": str(repo), "target_branch": "main"})
    assert response.status_code == 400
    assert "checked out" in response.context["form"].errors["target_branch"][0]
    response = console.post(reverse("console:spawn"), {**form, "repository": str(repo), "verify": '["pytest"]'})
    assert response.status_code == 400
    assert "argv list" in response.context["form"].errors["verify"][0]
    assert not Session.objects.exists()

    verify = '[["python", "-m", "pytest"]]'
    response = console.post(reverse("console:spawn"), {**form, "repository": str(repo), "verify": verify})
    assert response.status_code == 302
    session = Session.objects.get()
    assert session.repository == str(repo) and session.verify == [["python", "-m", "pytest"]]


def test_the_submit_form_can_say_no_change_is_expected(console, crew):
    data = {"session": crew.pk, "title": "Survey", "pattern": "feature_delivery", "priority": 0}
    assert console.post(reverse("console:submit"), data).status_code == 302
    assert Workflow.objects.get(title="Survey").expects_change is False  # an unticked box
    assert (
        console.post(reverse("console:submit"), {**data, "title": "Build", "expects_change": "on"}).status_code == 302
    )
    assert Workflow.objects.get(title="Build").expects_change is True


def test_the_admin_adds_a_session_with_a_repository_and_keeps_it_fixed(admin_client, repo, tmp_path):
    add = reverse("admin:coordination_session_add")
    base = {"name": "Admin crew", "goal": "", "workspace": str(tmp_path), "repository": str(repo)}
    response = admin_client.post(add, {**base, "target_branch": "no..dots", "verify": ""})
    assert response.status_code == 200
    assert "valid branch name" in response.context["adminform"].form.errors["target_branch"][0]
    response = admin_client.post(add, {**base, "target_branch": "", "verify": '[["make", "check"]]'})
    assert response.status_code == 302, response.context["adminform"].form.errors
    session = Session.objects.get()
    assert session.target_branch == f"hive/{session.slug}/main" and session.verify == [["make", "check"]]

    change = reverse("admin:coordination_session_change", args=[session.pk])
    inlines = {f"{prefix}-{key}": 0 for prefix in ("agents", "workflows") for key in ("TOTAL_FORMS", "INITIAL_FORMS")}
    response = admin_client.post(change, {"name": "Admin crew", "goal": "", "verify": '"make check"', **inlines})
    assert response.status_code == 200
    assert "argv lists" in response.context["adminform"].form.errors["verify"][0]
    shown = {"initial-verify": '[["make", "check"]]'}  # the page's hidden initial value (a callable default)
    response = admin_client.post(change, {"name": "Admin crew", "goal": "", "verify": "", **shown, **inlines})
    assert response.status_code == 302, response.context["adminform"].form.errors
    session.refresh_from_db()
    assert session.verify == [] and session.repository == str(repo)


def test_verify_changes_later_are_checked_against_the_sessions_repository(repo, tmp_path):
    session = Session.objects.create(name="S", workspace=str(tmp_path), repository=str(repo))
    session_update(session=session, verify=[["make", "test"]])
    session.refresh_from_db()
    assert session.verify == [["make", "test"]]
    with pytest.raises(DomainError) as caught:
        session_update(session=session, repository="/elsewhere")
    assert caught.value.errors == {"repository": "cannot be changed here"}
    talk = Session.objects.create(name="Talk", workspace=str(tmp_path))
    with pytest.raises(DomainError) as caught:
        session_update(session=talk, verify=[["make"]])
    assert caught.value.errors == {"verify": "needs a repository"}


def test_the_admin_lists_verification_runs_and_merge_leases(admin_client, tmp_path):
    session = Session.objects.create(name="S", workspace=str(tmp_path))
    workflow = Workflow.objects.create(session=session, pattern="feature_delivery", title="W")
    run = VerificationRun.objects.create(
        workflow=workflow, kind="merge", command=["make", "check"], exit_code=2, passed=False, output_tail="boom"
    )
    lock = MergeLock.objects.create(repository="/srv/a.git", owner="d1", expires_at=timezone.now() - timedelta(1))
    for model, obj, words in ((VerificationRun, run, "make check"), (MergeLock, lock, "expired")):
        listing = admin_client.get(reverse(f"admin:coordination_{model._meta.model_name}_changelist"))
        assert listing.status_code == 200 and words in listing.content.decode()
        page = admin_client.get(reverse(f"admin:coordination_{model._meta.model_name}_change", args=[obj.pk]))
        assert page.status_code == 200
        assert admin_client.get(reverse(f"admin:coordination_{model._meta.model_name}_add")).status_code == 403
