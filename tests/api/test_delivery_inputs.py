"""A session's repository, target branch and verify commands: checked with real git, refused with the field named."""

from __future__ import annotations

import json
import subprocess

import pytest

from coordination.models import Session, Workflow
from tests.coordination.gitrepos import git, make_bare, make_repository

pytestmark = pytest.mark.django_db

SPAWN = "/api/coordination/spawn"
MEMBERS = [{"role": "developer"}]


def spawn(client, **body):
    return client.post(
        SPAWN, json.dumps({"name": "Code crew", "members": MEMBERS, **body}), content_type="application/json"
    )


def refused(response, field: str) -> str:
    assert response.status_code == 400, response.content
    data = response.json()
    errors = data.get("errors", data)
    named = [key for key in errors if key == field or key.startswith(f"{field}[")]
    assert named, data
    assert not Session.objects.exists()
    return json.dumps({key: errors[key] for key in named})


def test_a_local_repository_gets_the_default_target_under_the_session_namespace(operator_client, tmp_path):
    repo = make_repository(tmp_path / "repo")
    verify = [["python", "-m", "pytest", "-q"], ["pyflakes", "."]]
    response = spawn(operator_client, repository=str(repo / "." / ""), verify=verify)
    assert response.status_code == 201, response.content
    session = Session.objects.get()
    assert session.repository == str(repo)
    assert session.slug == f"code-crew-{session.pk}"
    assert session.target_branch == f"hive/code-crew-{session.pk}/main"
    assert session.verify == verify


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_a_bare_repository_may_name_its_own_branch_as_target(operator_client, tmp_path, form):
    bare = make_bare(tmp_path / "shared.git", source=make_repository(tmp_path / "seed"))
    repository = str(bare) if form == "path" else f"file://{bare}"
    response = spawn(operator_client, repository=repository, target_branch="main")
    assert response.status_code == 201, response.content
    assert Session.objects.get().target_branch == "main"


def test_a_directory_that_is_not_a_repository_is_refused(operator_client, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert "not a git repository" in refused(spawn(operator_client, repository=str(plain)), "repository")


def test_a_subdirectory_of_a_repository_is_refused(operator_client, tmp_path):
    repo = make_repository(tmp_path / "repo", files={"src/app.py": "x = 1\n"})
    assert "not a git repository" in refused(spawn(operator_client, repository=str(repo / "src")), "repository")


def test_paths_outside_the_workspace_roots_and_relative_paths_are_refused(operator_client, tmp_path):
    assert "HIVE_WORKSPACE_ROOTS" in refused(spawn(operator_client, repository="/usr"), "repository")
    assert "absolute" in refused(spawn(operator_client, repository="repo"), "repository")


def test_a_repository_without_commits_is_refused(operator_client, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    git("init", "-q", cwd=empty)
    assert "no commit" in refused(spawn(operator_client, repository=str(empty)), "repository")


@pytest.mark.parametrize(
    "url, words",
    [
        ("ext::sh -c touch% /tmp/owned", "remote helpers"),
        ("ftp://example.org/repo.git", "unsupported URL scheme"),
        ("http://127.0.0.1:9/repo.git", "git cannot read it"),
        ("--upload-pack=touch /tmp/owned", "not an option"),
    ],
)
def test_urls_git_cannot_read_are_refused(operator_client, url, words):
    assert words in refused(spawn(operator_client, repository=url), "repository")


@pytest.mark.parametrize("branch", ["has space", "two..dots", "end.lock", "-dash", "@", "a/", "x~1", "q?"])
def test_invalid_branch_names_are_refused(operator_client, tmp_path, branch):
    repo = make_repository(tmp_path / "repo")
    assert "not a valid branch name" in refused(
        spawn(operator_client, repository=str(repo), target_branch=branch), "target_branch"
    )


@pytest.mark.parametrize("branch", ["hive", "hive/other/main"])
def test_the_hive_folder_is_reserved(operator_client, tmp_path, branch):
    repo = make_repository(tmp_path / "repo")
    assert "hive/" in refused(spawn(operator_client, repository=str(repo), target_branch=branch), "target_branch")


def test_a_target_checked_out_in_the_users_working_copy_is_refused(operator_client, tmp_path):
    repo = make_repository(tmp_path / "repo")
    (repo / "README.md").write_text("uncommitted\n")
    message = refused(spawn(operator_client, repository=str(repo), target_branch="main"), "target_branch")
    assert "checked out" in message and str(repo) in message
    # a linked worktree of the user's is the user's too
    git("worktree", "add", "-q", "-b", "feature", str(tmp_path / "feature-tree"), cwd=repo)
    assert "checked out" in refused(
        spawn(operator_client, repository=str(repo), target_branch="feature"), "target_branch"
    )
    # the working copy is as it was: same HEAD, same uncommitted change
    assert git("symbolic-ref", "HEAD", cwd=repo) == "refs/heads/main"
    assert (repo / "README.md").read_text() == "uncommitted\n"
    # a branch not checked out anywhere is fine
    git("branch", "release", cwd=repo)
    assert spawn(operator_client, repository=str(repo), target_branch="release").status_code == 201


@pytest.mark.parametrize(
    "verify, words",
    [
        ("pytest -q", "list of argv lists"),
        (["pytest -q"], "argv list"),
        ([["pytest -q"]], "command line, not a program"),
        ([[]], "at least its program"),
        ([["python", 3]], "must be a string"),
        ([["python", ""]], "blank"),
        ([["echo", "{title}"]], "{title} is not filled in"),
        ({"argv": ["pytest"]}, "list of argv lists"),
        ([["true"]] * 21, "20"),
    ],
)
def test_verify_must_be_argv_lists(operator_client, tmp_path, verify, words):
    repo = make_repository(tmp_path / "repo")
    assert words in refused(spawn(operator_client, repository=str(repo), verify=verify), "verify")


def test_target_and_verify_need_a_repository(operator_client):
    assert "needs a repository" in refused(spawn(operator_client, target_branch="release"), "target_branch")
    assert "needs a repository" in refused(spawn(operator_client, verify=[["true"]]), "verify")


def test_nothing_of_the_users_repository_changes_when_spawning(operator_client, tmp_path):
    repo = make_repository(tmp_path / "repo")
    before = subprocess.run(["git", "for-each-ref"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert spawn(operator_client, repository=str(repo)).status_code == 201
    after = subprocess.run(["git", "for-each-ref"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert before == after


def test_work_may_say_it_expects_no_change(operator_client, crew):
    body = {"session": crew.pk, "title": "Audit the licences", "expects_change": False}
    response = operator_client.post("/api/tasks", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    assert Workflow.objects.get(title="Audit the licences").expects_change is False
    body = {"session": crew.pk, "title": "Guess", "expects_change": "no"}
    response = operator_client.post("/api/tasks", json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and "expects_change" in json.dumps(response.json())
    assert not Workflow.objects.filter(title="Guess").exists()
