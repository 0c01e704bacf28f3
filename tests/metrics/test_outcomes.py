"""The exactly-once checks catch what they name: duplicate completions, double assignment, lost work,
and a task's work landing twice in a real git repository."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from coordination.demo import DEMO_DIR, workspace_create
from coordination.events import EventDraft, event_record
from coordination.models import CoordinationEvent, Task, TaskAttempt, Workflow
from coordination.services import WorkSpec, work_submit
from metrics import outcomes
from metrics.validation import report
from metrics.validation.repository import repository_side_effects
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered(crew, engine):
    """A feature delivered by the scripted crew; every check is clean on it."""
    workflow = work_submit(session=crew, work=WorkSpec(title="Coupons", pattern="feature_delivery"))
    run_until_quiet(engine)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    return workflow


def test_a_clean_run_passes_every_check(delivered):
    tasks = Task.objects.filter(session=delivered.session)
    assert outcomes.duplicate_completions(tasks) == []
    assert outcomes.tasks_assigned_twice(tasks) == []
    assert outcomes.tasks_lost(tasks, live_coordinator_ids=set()) == []
    success = outcomes.coordination_success(Workflow.objects.filter(session=delivered.session))
    assert (success["ratio"], success["delivered_unaided"], success["finished"]) == (1.0, 1, 1)


def test_an_injected_duplicate_completion_is_caught(delivered):
    task = Task.objects.filter(workflow=delivered, status=Task.Status.COMPLETED).order_by("id").first()
    first = task.attempts.get(status=TaskAttempt.Status.SUCCEEDED)
    # Written straight into the database, as a double-applied result would leave it.
    TaskAttempt.objects.create(
        task=task,
        number=first.number + 1,
        agent=first.agent,
        status=TaskAttempt.Status.SUCCEEDED,
        started_at=first.finished_at + timedelta(seconds=1),
        finished_at=first.finished_at + timedelta(seconds=2),
    )
    event_record(
        EventDraft(type=CoordinationEvent.Type.TASK_COMPLETED, session_id=task.session_id, task_id=task.pk),
        now=timezone.now(),
    )
    found = outcomes.duplicate_completions(Task.objects.filter(session=delivered.session))
    assert found == [{"task": task.pk, "succeeded_attempts": 2, "completed_events": 2}]
    figures = _figures(exactly_once={"duplicate_completions": found})
    assert report.evaluate(figures, min_success=0.95, min_events=1.0) == ["duplicate_completions"]


def test_overlapping_attempts_are_a_double_assignment(delivered):
    task = Task.objects.filter(workflow=delivered).order_by("id").first()
    first = task.attempts.order_by("number").first()
    TaskAttempt.objects.create(
        task=task,
        number=first.number + 1,
        status=TaskAttempt.Status.FAILED,
        started_at=first.started_at,  # began while the first was still running
        finished_at=first.finished_at,
    )
    assert outcomes.tasks_assigned_twice(Task.objects.filter(pk=task.pk)) == [
        {"task": task.pk, "attempts": [first.number, first.number + 1]}
    ]


def test_running_work_without_a_live_daemon_is_lost(delivered, engine):
    task = Task.objects.filter(workflow=delivered).order_by("id").first()
    Task.objects.filter(pk=task.pk).update(
        status=Task.Status.RUNNING, lease_owner=engine.instance, lease_expires_at=timezone.now()
    )
    tasks = Task.objects.filter(pk=task.pk)
    lost = outcomes.tasks_lost(tasks, live_coordinator_ids={engine.instance.pk})
    assert lost == [
        {"task": task.pk, "why": "running without a running attempt"},
        {"task": task.pk, "why": "unfinished in a finished workflow"},
    ]


def test_escalated_work_counts_against_success_in_a_validation(crew):
    for title, status, humans in [("a", "completed", 0), ("b", "completed", 1), ("c", "waiting_human", 0)]:
        Workflow.objects.create(
            session=crew,
            pattern="feature_delivery",
            title=title,
            status=status,
            human_interventions=humans,
            completed_at=timezone.now() if status == "completed" else None,
        )
    workflows = Workflow.objects.filter(session=crew)
    assert outcomes.coordination_success(workflows)["ratio"] == 0.5
    judged = outcomes.coordination_success(workflows, include_escalated=True)
    assert (judged["ratio"], judged["delivered_unaided"], judged["denominator"]) == (0.3333, 1, 3)


def _commit_as(repo, *, task: int, attempt: int, text: str) -> None:
    (repo / "notes.md").open("a").write(text + "\n")
    code = (
        "import sys, _support; from pathlib import Path; "
        "print(_support.commit(Path(sys.argv[1]), ['notes.md'], 'Work notes'))"
    )
    env = {
        **os.environ,
        "HIVE_TASK_ID": str(task),
        "HIVE_ATTEMPT": str(attempt),
        "HIVE_AGENT_NAME": "dev-test",
        "PYTHONPATH": str(DEMO_DIR),
    }
    subprocess.run([sys.executable, "-c", code, str(repo)], env=env, check=True, capture_output=True)


def test_a_task_committing_twice_in_the_repository_is_caught(tmp_path):
    repo = workspace_create(root=tmp_path)
    _commit_as(repo, task=7, attempt=1, text="first attempt, whose daemon was killed")
    _commit_as(repo, task=8, attempt=1, text="another task")
    assert repository_side_effects(repo)["duplicated"] == []

    _commit_as(repo, task=7, attempt=2, text="the retry did it again")
    found = repository_side_effects(repo)
    assert [(d["task"], d["attempts"]) for d in found["duplicated"]] == [(7, [1, 2])]
    assert (found["commits"], found["tasks_with_commits"], found["untraced_count"]) == (4, 2, 0)
    figures = _figures(exactly_once={"repository": found})
    assert report.evaluate(figures, min_success=0.95, min_events=1.0) == ["repository_duplicates"]


def _figures(*, exactly_once: dict) -> dict:
    """A report whose figures are all clean, but for the ones given."""
    return {
        "coordination_success": {"ratio": 1.0},
        "exactly_once": {
            "duplicate_completions": [],
            "tasks_assigned_twice": [],
            "tasks_lost": [],
            "repository": {"checked": True, "duplicated": []},
            **exactly_once,
        },
        "events": {"completeness": 1.0, "duplicates": 0},
        "reclaim": [],
        "faults": [],
        "faults_not_injected": [],
        "unexpected_exits": [],
    }
