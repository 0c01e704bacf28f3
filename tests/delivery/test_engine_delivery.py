"""Deliveries through the engine: attempts in worktrees, claims verified, the merge queue, real git."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from coordination.engine import Engine
from coordination.models import CoordinationEvent, Decision, Session, Task, TaskAttempt, VerificationRun, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from coordination.services.merge_queue import merge_queue_run, merge_runner
from tests import conftest

from .conftest import run_git, snapshot

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # worker threads write while the loop does: SQLite's shared in-memory test database locks whole tables
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), reason="needs PostgreSQL (concurrent writers)"
    ),
]

# a developer that writes the file its task names, from the environment (task text never becomes code)
WRITE_TITLE_FILE = ["sh", "-c", 'printf "%s\\n" "$HIVE_DESCRIPTION" > "$1"', "sh", "{workflow_title}"]


@pytest.fixture
def engines():
    made: list[Engine] = []

    def make(**kwargs) -> Engine:
        kwargs.setdefault("concurrency", 2)
        kwargs.setdefault("housekeeping_interval", 3600)
        engine = Engine(**kwargs)
        made.append(engine)
        return engine

    yield make
    merge_runner.wait()
    for engine in made:
        engine.shutdown(grace=0)


def code_session(workspace, repository, *members: MemberSpec, verify=()) -> Session:
    session = team_spawn(name="Code crew", workspace=str(workspace), members=list(members))
    Session.objects.filter(pk=session.pk).update(repository=str(repository), verify=[list(v) for v in verify])
    session.refresh_from_db()
    return session


def developer(name: str, argv: list[str]) -> MemberSpec:
    return MemberSpec(role="developer", name=name, runtime="command", runtime_config={"argv": argv})


def reviewer() -> MemberSpec:
    return MemberSpec(role="reviewer", name="rev", runtime="scripted", runtime_config={"duration_s": 0})


def architect() -> MemberSpec:
    return MemberSpec(role="architect", name="arch", runtime="scripted", runtime_config={"duration_s": 0})


def submit(session, title: str, description: str = "content") -> Workflow:
    return work_submit(
        session=session, work=WorkSpec(title=title, description=description, pattern="code_review_cycle")
    )


def deliver_all(engine: Engine) -> None:
    """Run the crew until quiet, then the merge queue, until nothing is left to do."""
    for _ in range(6):
        conftest.run_until_quiet(engine, drain_timeout=30)
        merge_runner.wait()  # a pass the housekeeping started holds the repository's merge lease meanwhile
        settled = merge_queue_run(owner="test merger")
        queued = Workflow.objects.filter(merge_queued_at__isnull=False, delivered_at__isnull=True).exists()
        if not settled and not queued:
            return


def types(**filters) -> list[str]:
    return list(CoordinationEvent.objects.filter(**filters).order_by("id").values_list("type", flat=True))


def test_two_developers_on_different_files_are_both_delivered(workspace, user_repo, engines):
    before = snapshot(user_repo)
    head_before = run_git("rev-parse", "HEAD", cwd=user_repo)
    session = code_session(
        workspace, user_repo, developer("dev-a", WRITE_TITLE_FILE), developer("dev-b", WRITE_TITLE_FILE), reviewer()
    )
    first, second = submit(session, "alpha.txt", "from alpha"), submit(session, "beta.txt", "from beta")
    deliver_all(engines())
    target = session.effective_target_branch
    for workflow in (first, second):
        workflow.refresh_from_db()
        assert workflow.delivered_at is not None and len(workflow.merge_commit) == 40, types(workflow=workflow)
        assert types(workflow=workflow).count("delivered") == 1
        assert "verification_passed" in types(workflow=workflow)
    assert run_git("show", f"{target}:alpha.txt", cwd=user_repo) == "from alpha"
    assert run_git("show", f"{target}:beta.txt", cwd=user_repo) == "from beta"
    attempts = TaskAttempt.objects.filter(task__step="implement")
    assert {attempt.verified for attempt in attempts} == {True}
    assert all(attempt.changed_files for attempt in attempts)
    # every attempt's worktree is gone (recycled folders hold no attempt), the user's copy untouched
    for attempt in TaskAttempt.objects.exclude(worktree=""):
        assert not os.path.exists(attempt.worktree)
    after = snapshot(user_repo)
    assert {k: v for k, v in after.items() if not k.startswith(".git/")} == {
        k: v for k, v in before.items() if not k.startswith(".git/")
    }
    assert run_git("rev-parse", "HEAD", cwd=user_repo) == head_before


def test_a_claim_without_any_change_is_rejected_with_evidence(workspace, user_repo, engines, settings):
    settings.HIVE = {**settings.HIVE, "MAX_ATTEMPTS": 2, "RETRY_BACKOFF": 0.0}
    session = code_session(workspace, user_repo, developer("dev-liar", ["echo", "All done, tests pass!"]), reviewer())
    workflow = submit(session, "nothing.txt")
    deliver_all(engines())
    workflow.refresh_from_db()
    assert workflow.delivered_at is None
    failed = CoordinationEvent.objects.filter(workflow=workflow, type="verification_failed").first()
    assert failed is not None
    assert "no change" in failed.collaboration_data["output_tail"]
    implement = Task.objects.get(workflow=workflow, step="implement")
    assert implement.status != Task.Status.COMPLETED
    assert TaskAttempt.objects.filter(task=implement, status=TaskAttempt.Status.FAILED, verified=False).exists()
    assert VerificationRun.objects.filter(workflow=workflow, kind="claim", passed=False).exists()
    assert "review" not in set(Task.objects.filter(workflow=workflow).values_list("step", flat=True))


def test_verify_commands_judge_the_claim(workspace, user_repo, engines, settings):
    settings.HIVE = {**settings.HIVE, "MAX_ATTEMPTS": 1}
    session = code_session(
        workspace,
        user_repo,
        developer("dev-a", WRITE_TITLE_FILE),
        reviewer(),
        verify=[["sh", "-c", "grep -q ok checked.txt || { echo 'checked.txt is not ok' >&2; exit 5; }"]],
    )
    workflow = submit(session, "checked.txt", "not good")
    deliver_all(engines())
    failed = CoordinationEvent.objects.get(workflow=workflow, type="verification_failed")
    assert failed.collaboration_data["exit_code"] == 5
    assert "checked.txt is not ok" in failed.collaboration_data["output_tail"]
    run = VerificationRun.objects.get(workflow=workflow)
    assert (run.kind, run.passed, run.exit_code) == ("claim", False, 5)


def test_same_lines_conflict_goes_to_the_architect_then_a_developer_with_the_target_merged_in(
    workspace, user_repo, engines
):
    # the developer overwrites the whole file with its description: a conflict's markers are replaced too
    overwrite = ["sh", "-c", 'printf "one\\n%s\\nthree\\n" "$HIVE_DESCRIPTION" > shared.txt']
    session = code_session(workspace, user_repo, developer("dev-a", overwrite), reviewer(), architect())
    first, second = submit(session, "first", "TWO by first"), submit(session, "second", "TWO by second")
    engine = engines()
    conftest.run_until_quiet(engine, drain_timeout=30)
    merge_runner.wait()
    merge_queue_run(owner="test merger")
    first.refresh_from_db()
    second.refresh_from_db()
    delivered, conflicted = (first, second) if first.delivered_at else (second, first)
    assert delivered.delivered_at and not conflicted.delivered_at
    conflict = CoordinationEvent.objects.get(workflow=conflicted, type="merge_conflict")
    assert conflict.collaboration_data["files"] == ["shared.txt"]
    assert "<<<<<<<" in conflict.collaboration_data["hunks"]["shared.txt"][0]
    target = session.effective_target_branch
    assert run_git("rev-parse", target, cwd=user_repo) == delivered.merge_commit, "nothing half-merged"
    assert Task.objects.filter(workflow=conflicted, step="resolve_conflict", role="architect").exists()
    deliver_all(engine)
    conflicted.refresh_from_db()
    history = list(CoordinationEvent.objects.filter(workflow=conflicted).order_by("id").values_list("type", "message"))
    history += list(Task.objects.filter(workflow=conflicted).values_list("step", "status", "error"))
    assert conflicted.delivered_at is not None, "\n".join(map(str, history))
    assert run_git("rev-list", "--count", f"{delivered.merge_commit}..{target}", cwd=user_repo) != "0"
    assert not Decision.objects.filter(workflow=conflicted).exists()


def test_a_reviewer_sees_the_whole_change_against_the_workflows_base(workspace, user_repo, engines):
    looks = MemberSpec(
        role="reviewer",
        name="rev-git",
        runtime="command",
        runtime_config={"argv": ["sh", "-c", 'git diff --name-only "$HIVE_BASE_SHA"']},
    )
    session = code_session(workspace, user_repo, developer("dev-a", WRITE_TITLE_FILE), looks)
    workflow = submit(session, "gamma.txt", "from gamma")
    deliver_all(engines())
    review = Task.objects.get(workflow=workflow, step="review")
    assert "gamma.txt" in review.result["output"]
    workflow.refresh_from_db()
    assert workflow.delivered_at is not None
