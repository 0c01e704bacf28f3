"""The console's workflow page: branch, diff, verification runs and merge queue, from real git."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from coordination.models import CoordinationEvent, Session, TaskAttempt, VerificationRun, Workflow
from tests.coordination.gitrepos import commit_file, git, make_repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def delivered_workflow(tmp_path) -> Workflow:
    """A repository with a workflow branch holding one change; a workflow on it with a failed and a passed run."""
    repo = make_repository(tmp_path / "repo", files={"app.py": "print('hello')\n"})
    base = git("rev-parse", "HEAD", cwd=repo)
    git("branch", "hive/s/w1", cwd=repo)
    git("worktree", "add", "-q", str(tmp_path / "wt"), "hive/s/w1", cwd=repo)
    head = commit_file(tmp_path / "wt", "app.py", "print('<b>hello</b>, world')\n", message="Greet")
    session = Session.objects.create(name="Code crew", workspace=str(tmp_path), repository=str(repo))
    workflow = Workflow.objects.create(
        session=session,
        pattern="feature_delivery",
        title="Greet the world",
        branch="hive/s/w1",
        base_sha=base,
        head_sha=head,
        merge_queued_at=timezone.now(),
    )
    task = workflow.tasks.create(session=session, step="implement", role="developer", title="Greet")
    attempt = TaskAttempt.objects.create(
        task=task, number=1, branch="hive/s/t1-a1", changed_files=["app.py"], verified=False, status="failed"
    )
    VerificationRun.objects.create(
        workflow=workflow,
        attempt=attempt,
        kind="claim",
        command=["python", "-m", "pytest", "-q"],
        exit_code=1,
        passed=False,
        output_tail="FAILED test_app.py::test_greeting - <assert>",
        duration_ms=640,
    )
    VerificationRun.objects.create(workflow=workflow, kind="merge", command=["true"], exit_code=0, passed=True)
    CoordinationEvent.objects.create(type="merge_queued", session=session, workflow=workflow, message="Queued")
    return workflow


def test_the_workflow_page_shows_branch_diff_runs_and_queue(viewer_client, tmp_path, django_assert_max_num_queries):
    workflow = delivered_workflow(tmp_path)
    other = Workflow.objects.create(session=workflow.session, pattern="feature_delivery", title="Next one")
    other.merge_queued_at = timezone.now()
    other.save()
    with django_assert_max_num_queries(20):
        response = viewer_client.get(reverse("console:workflow", args=[workflow.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<code data-branch>hive/s/w1</code>" in page
    assert 'id="workflow-diff"' in page and "vendor/diff2html/diff2html.min.js" in page
    # the diff's text is escaped, never markup
    assert "&lt;b&gt;hello&lt;/b&gt;" in page and "<b>hello</b>" not in page
    assert "FAILED test_app.py::test_greeting - &lt;assert&gt;" in page
    assert page.index(f'data-queue-entry="{workflow.pk}"') < page.index(f'data-queue-entry="{other.pk}"')
    assert "position 1" in page and "Queued" in page
    session_page = viewer_client.get(reverse("console:session", args=[workflow.session_id])).content.decode()
    assert reverse("console:workflow", args=[workflow.pk]) in session_page


def test_a_workflow_without_repository_or_branch_says_so(viewer_client, crew, tmp_path):
    plain = Workflow.objects.create(session=crew, pattern="feature_delivery", title="Talk")
    page = viewer_client.get(reverse("console:workflow", args=[plain.pk])).content.decode()
    assert "no repository" in page and "workflow-diff" not in page
    repo = make_repository(tmp_path / "repo")
    session = Session.objects.create(name="Code", workspace=str(tmp_path), repository=str(repo))
    fresh = Workflow.objects.create(session=session, pattern="feature_delivery", title="Fresh")
    page = viewer_client.get(reverse("console:workflow", args=[fresh.pk])).content.decode()
    assert "No diff to show: the workflow has no branch yet." in page
    assert "Nothing is waiting to be merged." in page
    assert viewer_client.get(reverse("console:workflow", args=[999999])).status_code == 404


def test_the_workflow_page_needs_a_signed_in_user(client, crew):
    workflow = Workflow.objects.create(session=crew, pattern="feature_delivery", title="Talk")
    response = client.get(reverse("console:workflow", args=[workflow.pk]))
    assert response.status_code == 302 and "login" in response["Location"]
