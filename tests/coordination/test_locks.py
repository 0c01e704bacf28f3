"""One lock order for every service: concurrent writers wait, never deadlock, never answer 500."""

from __future__ import annotations

import threading
from functools import partial

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from coordination.models import Decision, Session, Task, Workflow
from coordination.services import MemberSpec, WorkSpec, locks, team_spawn, work_submit
from coordination.services.flow import FlowBatch, batch_flush, decision_draft

OPTIONS = ("retry", "skip", "abandon")


def blocked_with_decision(session) -> tuple[Task, Decision]:
    """A task escalated to a human: blocked, its workflow waiting on an open decision."""
    workflow = work_submit(session=session, work=WorkSpec(title="Stuck", pattern="conflict_resolution"))
    task = workflow.tasks.get()
    now = timezone.now()
    batch = FlowBatch()
    decision = decision_draft(task=task, workflow=workflow, kind="retries_exhausted", now=now, batch=batch, facts={})
    Task.objects.filter(pk=task.pk).update(status=Task.Status.BLOCKED, attempt=3)
    batch_flush(batch, now=now)
    return task, decision


def at_once(*calls) -> list:
    """Run `calls` in threads released together; each thread's answer (or exception) in order."""
    barrier = threading.Barrier(len(calls))
    answers: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            answers[i] = call()
        except Exception as exc:  # reported, so the test fails with it
            answers[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deadlocks are PostgreSQL's")
def test_answering_a_decision_and_cancelling_its_task_at_once_200_times(transactional_db, workspace, operator):
    session = team_spawn(
        name="Locks", workspace=str(workspace), members=[MemberSpec(role="developer", runtime="scripted")]
    )
    answer_client, cancel_client = Client(), Client()
    answer_client.force_login(operator)
    cancel_client.force_login(operator)
    statuses = []
    for i in range(200):
        task, decision = blocked_with_decision(session)
        option = OPTIONS[i % len(OPTIONS)]
        answer_url, cancel_url = f"/api/decisions/{decision.pk}/answer", f"/api/tasks/{task.pk}/cancel"
        answered, cancelled = at_once(
            partial(answer_client.post, answer_url, {"option": option}, content_type="application/json"),
            partial(cancel_client.post, cancel_url, {}, content_type="application/json"),
        )
        for response in (answered, cancelled):
            assert not isinstance(response, Exception), response
        statuses.append((answered.status_code, cancelled.status_code))
        assert answered.status_code in (200, 409), answered.content
        assert cancelled.status_code in (200, 409), cancelled.content
        decision.refresh_from_db()
        task.refresh_from_db()
        # Whoever came second saw the first one's write: never both applied on a stale read.
        if answered.status_code == 200 and cancelled.status_code == 200:
            assert decision.status == Decision.Status.CANCELLED or task.status == Task.Status.CANCELLED
        assert decision.status != Decision.Status.OPEN or task.status == Task.Status.CANCELLED
        assert Workflow.objects.get(pk=task.workflow_id).status != Workflow.Status.WAITING_HUMAN or (
            decision.status == Decision.Status.OPEN
        )
    assert len(statuses) == 200


def test_a_lock_out_of_order_is_refused(db, workspace):
    session = team_spawn(
        name="Order", workspace=str(workspace), members=[MemberSpec(role="developer", runtime="scripted")]
    )
    workflow = work_submit(session=session, work=WorkSpec(title="One", pattern="conflict_resolution"))
    task = workflow.tasks.get()
    with pytest.raises(locks.LockOrderError, match="task locked after workflow"), locks.atomic():
        locks.workflow(workflow.pk)
        locks.task(task.pk)
    with locks.atomic():  # the project's order: task, agent, workflow, session
        locks.task(task.pk)
        locks.agents(session.agents.values_list("pk", flat=True))
        locks.workflow(workflow.pk)
        assert locks.session_status_shared(session.pk) == Session.Status.ACTIVE
