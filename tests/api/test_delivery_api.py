"""Delivery reads over the API: a workflow's diff (real git), its verification runs, a session's merge queue."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from coordination.delivery_reads import workflow_diff
from coordination.models import Session, TaskAttempt, VerificationRun, Workflow
from tests.coordination.gitrepos import commit_file, git, make_bare, make_repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared(tmp_path):
    """A bare repository with a workflow branch two commits ahead of main, and a merge of it on main."""
    seed = make_repository(tmp_path / "seed", files={"app.py": "print('hello')\n", "README.md": "# app\n"})
    bare = make_bare(tmp_path / "shared.git", source=seed)
    base = git("rev-parse", "HEAD", cwd=seed)
    git("switch", "-q", "-c", "hive/s/w1", cwd=seed)
    commit_file(seed, "app.py", "print('hello, world')\n", message="Greet the world")
    head = commit_file(seed, "docs/usage.md", "Run it.\n", message="Document it")
    git("switch", "-q", "main", cwd=seed)
    git("merge", "-q", "--no-ff", "-m", "Merge w1", "hive/s/w1", cwd=seed)
    merge = git("rev-parse", "HEAD", cwd=seed)
    git("push", "-q", str(bare), "main", "hive/s/w1", cwd=seed)
    return {"bare": bare, "base": base, "head": head, "merge": merge}


@pytest.fixture
def session(shared, tmp_path):
    return Session.objects.create(name="Code", workspace=str(tmp_path), repository=str(shared["bare"]))


def workflow_in(session, **fields) -> Workflow:
    return Workflow.objects.create(session=session, pattern="feature_delivery", title="Greet", **fields)


def test_the_diff_of_a_workflow_branch(operator_client, session, shared):
    workflow = workflow_in(session, branch="hive/s/w1", base_sha=shared["base"], head_sha=shared["head"])
    response = operator_client.get(f"/api/workflows/{workflow.pk}/diff")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["of"], body["base"], body["head"], body["truncated"]) == (
        "branch",
        shared["base"],
        shared["head"],
        False,
    )
    assert body["files"] == ["app.py", "docs/usage.md"]
    assert "+print('hello, world')" in body["diff"] and "diff --git a/docs/usage.md" in body["diff"]


def test_a_delivered_workflow_shows_what_its_merge_changed(viewer_client, session, shared):
    workflow = workflow_in(
        session,
        base_sha=shared["base"],
        head_sha=shared["head"],
        merge_commit=shared["merge"],
        delivered_at=timezone.now(),
    )
    body = viewer_client.get(f"/api/workflows/{workflow.pk}/diff").json()
    assert (body["of"], body["base"], body["head"]) == ("merge", shared["base"], shared["merge"])
    assert body["files"] == ["app.py", "docs/usage.md"]


def test_a_long_diff_is_cut_before_the_file_that_does_not_fit(session, shared):
    workflow = workflow_in(session, base_sha=shared["base"], head_sha=shared["head"])
    whole = workflow_diff(workflow=workflow).diff
    second = whole.index("diff --git a/docs/usage.md")
    cut = workflow_diff(workflow=workflow, limit=second + 10)
    assert cut.truncated and cut.diff == whole[:second]


def test_a_url_repository_is_read_from_a_clone_on_this_server(operator_client, shared, tmp_path, settings):
    url = f"file://{shared['bare']}"
    session = Session.objects.create(name="Remote", workspace=str(tmp_path), repository="https://example.org/app.git")
    workflow = workflow_in(session, base_sha=shared["base"], head_sha=shared["head"])
    response = operator_client.get(f"/api/workflows/{workflow.pk}/diff")
    assert response.status_code == 409 and "no copy" in response.json()["errors"]["repository"]

    root = tmp_path / "root"
    digest = hashlib.sha256(session.repository.encode()).hexdigest()[:16]
    subprocess.run(["git", "clone", "-q", "--bare", url, str(root / ".hive-clones" / digest / "repo.git")], check=True)
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOTS": [root]}
    response = operator_client.get(f"/api/workflows/{workflow.pk}/diff")
    assert response.status_code == 200 and response.json()["files"] == ["app.py", "docs/usage.md"]


def test_no_diff_without_a_repository_a_branch_or_the_commits(operator_client, crew, session, shared):
    no_repo = workflow_in(crew)
    response = operator_client.get(f"/api/workflows/{no_repo.pk}/diff")
    assert response.status_code == 409 and "repository" in response.json()["errors"]
    no_branch = workflow_in(session)
    response = operator_client.get(f"/api/workflows/{no_branch.pk}/diff")
    assert response.status_code == 409 and "branch" in response.json()["errors"]
    unknown = workflow_in(session, base_sha=shared["base"], head_sha="f" * 40)
    response = operator_client.get(f"/api/workflows/{unknown.pk}/diff")
    assert response.status_code == 409 and "cannot show" in response.json()["errors"]["diff"]
    for path in ("/api/workflows/999999/diff", "/api/workflows/abc/diff", "/api/workflows/99999999999999999999/diff"):
        assert operator_client.get(path).status_code == 404


def test_the_diff_needs_a_signed_in_user(anon_client, session, shared):
    workflow = workflow_in(session, base_sha=shared["base"], head_sha=shared["head"])
    assert anon_client.get(f"/api/workflows/{workflow.pk}/diff").status_code in (401, 403)
    assert anon_client.get(f"/api/workflows/{workflow.pk}/verification-runs").status_code in (401, 403)
    assert anon_client.get(f"/api/sessions/{session.pk}/merge-queue").status_code in (401, 403)


def test_verification_runs_of_a_workflow_in_order(viewer_client, crew):
    workflow = workflow_in(crew)
    task = workflow.tasks.create(session=crew, step="implement", role="developer", title="t")
    attempt = TaskAttempt.objects.create(task=task, number=1)
    VerificationRun.objects.create(
        workflow=workflow,
        attempt=attempt,
        kind="claim",
        command=["python", "-m", "pytest", "-q"],
        exit_code=1,
        passed=False,
        output_tail="1 failed",
        duration_ms=812,
    )
    VerificationRun.objects.create(workflow=workflow, kind="merge", command=["true"], exit_code=0, passed=True)
    workflow_in(crew).verification_runs.create(kind="merge", command=["other"], exit_code=0, passed=True)
    response = viewer_client.get(f"/api/workflows/{workflow.pk}/verification-runs")
    assert response.status_code == 200
    runs = response.json()["results"]
    assert [(r["kind"], r["passed"], r["task"], r["attempt_number"]) for r in runs] == [
        ("claim", False, task.pk, 1),
        ("merge", True, None, None),
    ]
    assert runs[0]["output_tail"] == "1 failed" and runs[0]["command"] == ["python", "-m", "pytest", "-q"]
    assert viewer_client.get("/api/workflows/0/verification-runs").status_code == 404


def test_the_merge_queue_lists_waiting_workflows_next_first(viewer_client, session):
    now = timezone.now()
    later = workflow_in(session, branch="hive/s/w2", merge_queued_at=now)
    first = workflow_in(session, branch="hive/s/w1", merge_queued_at=now - timedelta(minutes=1))
    tie = workflow_in(session, branch="hive/s/w3", merge_queued_at=now)
    workflow_in(session, merge_queued_at=now - timedelta(hours=1), delivered_at=now)  # delivered: gone
    workflow_in(session)  # not queued
    response = viewer_client.get(f"/api/sessions/{session.pk}/merge-queue")
    assert response.status_code == 200
    assert [(e["position"], e["id"]) for e in response.json()] == [(1, first.pk), (2, later.pk), (3, tie.pk)]
    assert viewer_client.get("/api/sessions/0/merge-queue").status_code == 404


def test_workflow_and_session_details_show_their_delivery(viewer_client, session, shared):
    workflow = workflow_in(session, branch="hive/s/w1", base_sha=shared["base"], head_sha=shared["head"])
    body = viewer_client.get(f"/api/workflows/{workflow.pk}").json()
    assert body["branch"] == "hive/s/w1" and body["head_sha"] == shared["head"]
    assert {"merge_queued_at", "delivered_at", "merge_commit", "expects_change", "base_sha"} <= set(body)
    body = viewer_client.get(f"/api/sessions/{session.pk}").json()
    assert body["repository"] == str(shared["bare"]) and body["target_branch"] == f"hive/{session.slug}/main"
