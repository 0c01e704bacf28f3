"""Collaboration patterns end to end: services + engine + scripted crews."""

from __future__ import annotations

import subprocess

import pytest
from django.conf import settings
from waffle.testutils import override_switch

from coordination.exceptions import ConflictError, DomainError
from coordination.models import CoordinationEvent, Decision, Task, Workflow
from coordination.services import (
    MemberSpec,
    WorkSpec,
    decision_answer,
    decisions_expire,
    team_spawn,
    work_submit,
)
from tests.conftest import scripted


def events_of(workflow) -> list[str]:
    return list(CoordinationEvent.objects.filter(workflow=workflow).order_by("id").values_list("type", flat=True))


def team(workspace, *members: MemberSpec):
    return team_spawn(name="Crew", workspace=str(workspace), members=list(members))


def six(**overrides) -> list[MemberSpec]:
    roles = ["product_manager", "architect", "developer", "reviewer", "tester", "devops"]
    return [overrides.get(role) or scripted(role) for role in roles]


def test_feature_delivery_emits_the_expected_event_sequence(crew, drive):
    workflow = work_submit(session=crew, work=WorkSpec(title="Add coupons", estimate_hours=10))
    drive()
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    stage = ["task_assigned", "task_completed", "task_handoff"]
    expected = (
        ["work_submitted", "collaboration_started"]
        + stage * 3  # spec, architecture, implement
        + ["task_assigned", "task_completed", "code_review_cycle", "task_handoff"]  # review
        + stage  # test
        + ["task_assigned", "task_completed", "ci_pipeline", "collaboration_completed"]  # ci
    )
    assert events_of(workflow) == expected
    tasks = list(workflow.tasks.order_by("id"))
    assert [t.role for t in tasks] == ["product_manager", "architect", "developer", "reviewer", "tester", "devops"]
    assert all(t.status == Task.Status.COMPLETED and t.simulated for t in tasks)
    # The human estimate is split over the steps and nothing is invented beyond it.
    assert sum(t.human_estimate_hours for t in tasks) == 10


def test_review_that_never_approves_escalates_at_the_bound_and_an_answer_unblocks(settings, workspace, drive, operator):
    settings.HIVE = {**settings.HIVE, "MAX_REVIEW_ROUNDS": 2}
    session = team(workspace, *six(reviewer=scripted("reviewer", script={"review": ["changes_requested"]})))
    workflow = work_submit(session=session, work=WorkSpec(title="Refactor cart", pattern="code_review_cycle"))
    drive()

    decision = Decision.objects.get(workflow=workflow)
    assert decision.kind == "review_deadlock" and decision.status == Decision.Status.OPEN
    blocked = decision.task
    assert blocked.step == "review" and blocked.status == Task.Status.BLOCKED and blocked.round == 2
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.WAITING_HUMAN
    assert workflow.tasks.filter(step="review").count() == 2
    assert events_of(workflow)[-1] == "decision_requested"

    decision_answer(decision=decision, option="approve", user=operator)
    drive()
    workflow.refresh_from_db()
    blocked.refresh_from_db()
    assert blocked.status == Task.Status.COMPLETED
    assert workflow.status == Workflow.Status.COMPLETED
    assert workflow.human_interventions == 1
    answered = CoordinationEvent.objects.get(workflow=workflow, type="decision_answered")
    assert answered.collaboration_data["option"] == "approve" and answered.collaboration_data["by"] == "operator"


def test_another_round_reopens_the_loop_and_abandon_cancels(settings, workspace, drive, operator):
    settings.HIVE = {**settings.HIVE, "MAX_REVIEW_ROUNDS": 1}
    session = team(workspace, *six(reviewer=scripted("reviewer", script={"review": ["changes_requested"]})))
    workflow = work_submit(session=session, work=WorkSpec(title="Tidy", pattern="code_review_cycle"))
    drive()
    first = Decision.objects.get(workflow=workflow)
    decision_answer(decision=first, option="another_round", user=operator)
    drive()
    assert workflow.tasks.filter(step="implement").count() == 2
    second = Decision.objects.get(workflow=workflow, status=Decision.Status.OPEN)
    decision_answer(decision=second, option="abandon", user=operator)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.CANCELLED
    assert not workflow.tasks.filter(status__in=["ready", "running", "blocked"]).exists()


def test_answering_twice_is_a_conflict_and_unknown_options_name_the_field(settings, workspace, drive, operator):
    settings.HIVE = {**settings.HIVE, "MAX_REVIEW_ROUNDS": 1}
    session = team(workspace, *six(reviewer=scripted("reviewer", script={"review": ["changes_requested"]})))
    work_submit(session=session, work=WorkSpec(title="X", pattern="code_review_cycle"))
    drive()
    decision = Decision.objects.get()
    with pytest.raises(DomainError) as bad:
        decision_answer(decision=decision, option="ship-it", user=operator)
    assert "option" in bad.value.errors
    decision_answer(decision=decision, option="abandon", user=operator)
    with pytest.raises(ConflictError):
        decision_answer(decision=decision, option="approve", user=operator)
    assert CoordinationEvent.objects.filter(type="decision_answered").count() == 1


def test_pair_programming_records_both_participants_and_swaps_roles(workspace, drive):
    session = team(workspace, scripted("developer"), scripted("developer", seed=2), scripted("reviewer"))
    workflow = work_submit(session=session, work=WorkSpec(title="Checkout", pattern="pair_programming"))
    drive()
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    rounds = list(workflow.tasks.filter(step="pair").order_by("round"))
    assert len(rounds) == 2
    for task in rounds:
        assert task.agent_id and task.pair_agent_id and task.agent_id != task.pair_agent_id
    assert (rounds[1].agent_id, rounds[1].pair_agent_id) == (rounds[0].pair_agent_id, rounds[0].agent_id)
    pair_events = CoordinationEvent.objects.filter(workflow=workflow, type="pair_programming")
    assert pair_events.count() == 4  # started + finished, two rounds
    for event in pair_events:
        assert {p["role"] for p in event.participants} == {"developer"}
        assert len(event.participants) == 2


def test_ci_failure_hands_back_to_the_developer_with_the_failing_output(workspace, drive):
    session = team(
        workspace,
        scripted("developer"),
        scripted("tester", script={"test": ["failure", "success"]}, summaries={"test": "2 tests failed in cart"}),
        scripted("devops"),
    )
    workflow = work_submit(session=session, work=WorkSpec(title="Pipeline", pattern="ci_cd"))
    drive()
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    steps = list(workflow.tasks.order_by("id").values_list("step", flat=True))
    assert steps == ["test", "implement", "test", "build", "deploy"]
    fix = workflow.tasks.get(step="implement")
    assert "2 tests failed in cart" in fix.handoff_note
    ci_events = CoordinationEvent.objects.filter(workflow=workflow, type="ci_pipeline")
    assert [e.collaboration_data["outcome"] for e in ci_events] == ["failure", "success", "success", "success"]


def test_task_handoff_passes_work_to_another_agent_with_a_note(workspace, drive):
    session = team(
        workspace, scripted("developer", summaries={"start": "half done: parser in place"}), scripted("developer")
    )
    workflow = work_submit(session=session, work=WorkSpec(title="Parser", pattern="task_handoff"))
    drive()
    start, finish = workflow.tasks.order_by("id")
    assert start.agent_id != finish.agent_id
    assert "half done: parser in place" in finish.handoff_note
    assert start.agent.name in finish.handoff_note and "finished start (round 1)" in finish.handoff_note
    handoff = CoordinationEvent.objects.get(workflow=workflow, type="task_handoff")
    assert handoff.collaboration_data["from"]["id"] == start.agent_id


def test_real_conflict_goes_to_the_architect_then_to_a_human(workspace, drive, operator):
    session = team(
        workspace,
        scripted("developer", script={"merge": ["conflict"]}),
        scripted("architect", script={"resolve_conflict": ["failure"]}),
    )
    workflow = work_submit(
        session=session, work=WorkSpec(title="Merge branches", pattern="conflict_resolution", files=["shop/cart.py"])
    )
    drive()
    decision = Decision.objects.get(workflow=workflow)
    assert decision.kind == "conflict"
    assert decision.task.step == "resolve_conflict" and decision.task.role == "architect"
    assert "conflict_resolved" in events_of(workflow)  # the architect's attempt is recorded as such
    decision_answer(decision=decision, option="accept", user=operator)
    drive()
    # "accept" continues: back to the merge, which conflicts again, and so on until the bound.
    assert workflow.tasks.filter(step="merge").count() >= 2


def test_deploy_waits_for_approval_while_the_switch_is_on(workspace, drive, operator):
    session = team(workspace, scripted("developer"), scripted("tester"), scripted("devops"))
    with override_switch("require_deploy_approval", active=True):
        workflow = work_submit(session=session, work=WorkSpec(title="Release 2", pattern="ci_cd"))
        drive()
    deploy = workflow.tasks.get(step="deploy")
    assert deploy.status == Task.Status.BLOCKED and deploy.attempt == 0
    decision = Decision.objects.get(task=deploy)
    assert decision.kind == "deploy_approval"
    decision_answer(decision=decision, option="approve", user=operator)
    drive()
    deploy.refresh_from_db()
    workflow.refresh_from_db()
    assert deploy.status == Task.Status.COMPLETED and workflow.status == Workflow.Status.COMPLETED


def test_overdue_decision_takes_its_default(workspace, drive, settings):
    session = team(workspace, scripted("developer"), scripted("tester"), scripted("devops"))
    with override_switch("require_deploy_approval", active=True):
        workflow = work_submit(session=session, work=WorkSpec(title="Release 3", pattern="ci_cd"))
        drive()
    decision = Decision.objects.get(workflow=workflow)
    Decision.objects.filter(pk=decision.pk).update(deadline=decision.created_at)
    assert decisions_expire() == 1
    decision.refresh_from_db()
    workflow.refresh_from_db()
    assert decision.status == Decision.Status.EXPIRED and decision.answer == "reject"
    assert workflow.status == Workflow.Status.CANCELLED
    assert workflow.human_interventions == 0


def test_submit_validation_names_the_field_and_writes_nothing(crew):
    cases = [
        (WorkSpec(title=""), "title"),
        (WorkSpec(title="x", pattern="waterfall"), "pattern"),
        (WorkSpec(title="x", estimate_hours="lots"), "estimate_hours"),
        (WorkSpec(title="x", estimate_hours=-1), "estimate_hours"),
        (WorkSpec(title="x", priority=1000), "priority"),
        (WorkSpec(title="x", files="cart.py"), "files"),
    ]
    before = CoordinationEvent.objects.count()
    for work, field in cases:
        with pytest.raises(DomainError) as error:
            work_submit(session=crew, work=work)
        assert field in error.value.errors, (work, error.value.errors)
    assert Workflow.objects.count() == 0
    assert CoordinationEvent.objects.count() == before


def test_spawn_validation_is_atomic(db, workspace):
    bad = [scripted("developer"), MemberSpec(role="developer", runtime="command", runtime_config={"argv": []})]
    with pytest.raises(DomainError) as error:
        team_spawn(name="Broken", workspace=str(workspace), members=bad)
    assert any(key.startswith("members[1].runtime_config") for key in error.value.errors)
    with pytest.raises(DomainError) as error:
        team_spawn(name="Broken", workspace=str(workspace), members=[MemberSpec(role="wizard")])
    assert "members[0].role" in error.value.errors
    with pytest.raises(DomainError) as error:
        team_spawn(name="Broken", workspace="relative/path")
    assert "workspace" in error.value.errors
    from coordination.models import Session

    assert not Session.objects.exists()
    assert not CoordinationEvent.objects.exists()


def test_a_workflow_without_a_repository_is_delivered_when_it_completes_once(crew, drive):
    workflow = work_submit(session=crew, work=WorkSpec(title="Docs", pattern="code_review_cycle", estimate_hours=2))
    drive()
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    assert workflow.delivered_at == workflow.completed_at


# a code session's attempts run in worktrees, written from the engine's worker threads: committed data needed
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), reason="needs PostgreSQL (concurrent writers)"
)
def test_a_workflow_of_a_code_session_is_not_delivered_by_completing(crew, drive, tmp_path):
    repository = tmp_path / "shop"
    repository.mkdir()
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repository)], check=True)
    subprocess.run(["git", *identity, "commit", "-q", "--allow-empty", "-m", "start"], cwd=repository, check=True)
    type(crew).objects.filter(pk=crew.pk).update(repository=str(repository))
    workflow = work_submit(session=crew, work=WorkSpec(title="Code", pattern="code_review_cycle", estimate_hours=2))
    # the scripted developer changes no file: say so, or the coordinator rejects its claim
    Workflow.objects.filter(pk=workflow.pk).update(expects_change=False)
    drive()
    workflow.refresh_from_db()
    assert workflow.completed_at is not None
    assert workflow.delivered_at is None  # the merge queue delivers it, once merged and verified
