"""Figures of crews that fail and crews that pair, computed from the rows they leave."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coordination.models import Decision, Task, TaskAttempt, Workflow
from coordination.services import WorkSpec, decision_answer, team_spawn, work_submit
from metrics import selectors as metrics
from tests.conftest import run_until_quiet, scripted

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing_crew(workspace, settings):
    """A developer whose every attempt fails, one attempt per task: the work ends abandoned by a human."""
    settings.HIVE = {**settings.HIVE, "MAX_ATTEMPTS": 1, "RETRY_BACKOFF": 0.0}
    members = [scripted("developer", failure_rate=1.0), scripted("reviewer")]
    return team_spawn(name="Failing crew", workspace=str(workspace), members=members)


def test_failures_count_in_success_rates(failing_crew, crew, engine):
    good = work_submit(session=crew, work=WorkSpec(title="Works", pattern="code_review_cycle", estimate_hours=4))
    bad = work_submit(
        session=failing_crew, work=WorkSpec(title="Breaks", pattern="code_review_cycle", estimate_hours=8)
    )
    run_until_quiet(engine)
    decision = Decision.objects.get(workflow=bad, status=Decision.Status.OPEN)
    assert decision.kind == Decision.Kind.RETRIES_EXHAUSTED
    decision_answer(decision=decision, option="abandon")
    run_until_quiet(engine)
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == Workflow.Status.COMPLETED
    assert bad.status in (Workflow.Status.FAILED, Workflow.Status.CANCELLED)

    data = metrics.coordination_metrics(window="24h")
    assert data["workflows_finished"] == 2
    assert data["workflows_completed_unaided"] == 1
    assert data["coordination_success_rate"] == 0.5
    developer = failing_crew.agents.get(role="developer")
    performance = metrics.agent_performance(agent=developer, window="24h")
    assert performance["failed"] == TaskAttempt.objects.filter(agent=developer, status="failed").count() >= 1
    assert performance["completed"] == 0
    assert performance["success_rate"] == 0.0
    value = metrics.business_value(window="24h")
    # Only the delivered work saves hours; the abandoned estimate counts nowhere.
    assert value["inputs"]["human_estimate_hours"] == Decimal("4.00")
    assert value["inputs"]["decisions_answered"] == 1


def test_a_pair_programming_crew_counts_its_work_once(workspace, engine):
    members = [scripted("developer"), scripted("developer", seed=1), scripted("reviewer")]
    session = team_spawn(name="Pair crew", workspace=str(workspace), members=members)
    workflow = work_submit(
        session=session, work=WorkSpec(title="Pair on search", pattern="pair_programming", estimate_hours=10)
    )
    run_until_quiet(engine)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    pair_tasks = list(workflow.tasks.filter(step="pair").order_by("id"))
    assert len(pair_tasks) >= 2
    for task in pair_tasks:
        assert task.pair_agent_id is not None and task.pair_agent_id != task.agent_id
    # Roles swap between rounds: the first round's navigator drives the second.
    assert pair_tasks[1].agent_id == pair_tasks[0].pair_agent_id

    data = metrics.coordination_metrics(window="24h")
    assert data["throughput"]["workflows_completed"] == 1
    assert data["throughput"]["tasks_completed"] == workflow.tasks.filter(status=Task.Status.COMPLETED).count()
    assert data["coordination_success_rate"] == 1.0
    value = metrics.business_value(window="24h")
    assert value["hours_saved"] == Decimal("10.00")  # the pair's work is one piece of work, counted once
