"""Failed attempts count in every success rate: per agent, per role and per window."""

from __future__ import annotations

import pytest

from coordination.models import TaskAttempt
from coordination.services import WorkSpec, team_spawn, work_submit
from metrics import selectors as metrics
from tests.conftest import run_until_quiet, scripted

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing_crew(db, workspace):
    """A crew whose only developer fails every attempt."""
    members = [scripted(role) for role in ("product_manager", "architect", "reviewer", "tester", "devops")]
    members.append(scripted("developer", failure_rate=1))
    return team_spawn(name="Failing crew", goal="ship", workspace=str(workspace), members=members)


def test_an_always_failing_agent_shows_its_failures_in_every_rate(failing_crew, engine):
    work_submit(session=failing_crew, work=WorkSpec(title="Doomed", pattern="feature_delivery"))
    run_until_quiet(engine)
    developer = failing_crew.agents.get(role="developer")
    failed = TaskAttempt.objects.filter(agent=developer, status=TaskAttempt.Status.FAILED).count()
    assert failed >= 1
    assert not TaskAttempt.objects.filter(agent=developer, status=TaskAttempt.Status.SUCCEEDED).exists()

    for window in ("1h", "all"):
        data = metrics.coordination_metrics(window=window)
        assert data["throughput"]["attempts_failed"] >= failed
        by_agent = {row["agent_id"]: row for row in data["success_by_agent"]}
        assert by_agent[developer.pk]["failed"] == failed
        assert by_agent[developer.pk]["success_rate"] == 0.0
        by_role = {row["role"]: row for row in data["success_by_role"]}
        assert by_role["developer"]["failed"] == failed
        assert by_role["developer"]["success_rate"] == 0.0
        assert data["attempt_success"]["failed"] >= failed
        assert data["attempt_success"]["success_rate"] < 1

        performance = metrics.agent_performance(agent=developer, window=window)
        assert performance["failed"] == failed
        assert performance["success_rate"] == 0.0


def test_a_failure_that_another_attempt_recovers_still_counts(crew, engine):
    work_submit(session=crew, work=WorkSpec(title="Fine", pattern="code_review_cycle"))
    run_until_quiet(engine)
    attempt = TaskAttempt.objects.filter(status=TaskAttempt.Status.SUCCEEDED).select_related("task").first()
    # The first try of this step had failed before the one that succeeded.
    TaskAttempt.objects.create(
        task=attempt.task,
        number=attempt.number + 100,
        agent=attempt.agent,
        status=TaskAttempt.Status.FAILED,
        started_at=attempt.started_at,
        finished_at=attempt.finished_at,
    )
    data = metrics.coordination_metrics(window="24h")
    row = {r["agent_id"]: r for r in data["success_by_agent"]}[attempt.agent_id]
    assert row["failed"] == 1 and row["success_rate"] < 1
    assert {r["role"]: r for r in data["success_by_role"]}[attempt.task.role]["success_rate"] < 1
