"""Hours saved count each workflow's estimate once, when it is delivered; rework and cancellations add none."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coordination.models import Task, Workflow
from coordination.services import MemberSpec, WorkSpec, task_cancel, team_spawn, work_submit
from metrics import selectors as metrics
from metrics.models import ValueAssumptions
from tests.conftest import run_until_quiet, scripted

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_human_time(db):
    # Hours saved without the human review charge, so the estimate shows as it is counted.
    ValueAssumptions.current()
    ValueAssumptions.objects.update(human_review_minutes_per_decision=0)


@pytest.fixture
def picky_crew(db, workspace):
    """A crew whose reviewer asks for changes twice before approving."""
    members = [scripted(role) for role in ("product_manager", "architect", "developer", "tester", "devops")]
    members.append(scripted("reviewer", script={"review": ["changes_requested", "changes_requested", "success"]}))
    return team_spawn(name="Picky crew", goal="ship", workspace=str(workspace), members=members)


def test_a_ten_hour_workflow_with_two_review_rounds_saves_exactly_ten_hours(picky_crew, engine):
    work_submit(
        session=picky_crew, work=WorkSpec(title="Feature", pattern="feature_delivery", estimate_hours=Decimal(10))
    )
    run_until_quiet(engine)
    workflow = Workflow.objects.get()
    assert workflow.status == Workflow.Status.COMPLETED
    assert Task.objects.filter(workflow=workflow, step="review").count() == 3  # two rounds of rework
    for window in ("1h", "all"):
        value = metrics.business_value(window=window)
        assert value["hours_saved"] == Decimal("10.00")
        assert value["inputs"]["human_estimate_hours"] == Decimal("10.00")
        assert value["inputs"]["workflows_delivered"] == 1
        assert value["crew_hours"] >= 0 and value["cost_usd"] >= 0
    assert "once" in metrics.BUSINESS_FORMULAS["hours_saved"]


def test_a_cancelled_workflow_saves_nothing(crew, engine):
    work_submit(session=crew, work=WorkSpec(title="Dropped", pattern="feature_delivery", estimate_hours=Decimal(8)))
    engine.tick()
    engine.drain(timeout=10)
    task = Task.objects.exclude(status__in=Task.FINISHED_STATUSES).order_by("id").first()
    task_cancel(task=task, reason="no longer needed")
    run_until_quiet(engine)
    assert Workflow.objects.get().status == Workflow.Status.CANCELLED
    assert Task.objects.filter(status=Task.Status.COMPLETED).exists()  # some steps were done before the cancel
    for window in ("1h", "all"):
        value = metrics.business_value(window=window)
        assert value["hours_saved"] == Decimal("0.00")
        assert value["inputs"]["workflows_delivered"] == 0


def test_no_productivity_gain_is_claimed_from_simulated_time_alone(picky_crew, engine, workspace):
    work_submit(session=picky_crew, work=WorkSpec(title="Scripted", pattern="code_review_cycle", estimate_hours=4))
    run_until_quiet(engine)
    simulated = metrics.business_value(window="1h")
    assert simulated["hours_saved"] == Decimal("4.00") and simulated["crew_hours"] >= 0
    assert simulated["productivity_gain"] is None
    assert "simulated" in metrics.BUSINESS_FORMULAS["productivity_gain"]

    real = team_spawn(
        name="Real crew",
        workspace=str(workspace),
        members=[
            MemberSpec(role="developer", runtime="command", runtime_config={"argv": ["sleep", "0.3"]}),
            MemberSpec(role="reviewer", runtime="command", runtime_config={"argv": ["sleep", "0.3"]}),
        ],
    )
    work_submit(session=real, work=WorkSpec(title="Real", pattern="code_review_cycle", estimate_hours=2))
    run_until_quiet(engine)
    value = metrics.business_value(window="1h")
    assert value["productivity_gain"] is not None and value["productivity_gain"] > 0
