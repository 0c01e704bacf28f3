"""Recovery: a daemon's death is not the task's failure, and a dead daemon's work comes back at once."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from agents.models import Agent
from agents.runtimes import Outcome, RuntimeResult
from coordination.models import CoordinationEvent, CoordinatorInstance, Decision, Task, TaskAttempt
from coordination.services import dispatch as d
from coordination.services.dispatch.recovery import RECLAIM_LIMIT

from .test_dispatch import assert_counters_match_running_tasks, coordinator, spawn, submit


def failed() -> RuntimeResult:
    return RuntimeResult(outcome=Outcome.FAILURE, summary="broke", error="exit 1", simulated=True)


def test_reclaimed_attempts_do_not_count_toward_max_attempts(db, workspace, settings):
    settings.HIVE = {**settings.HIVE, "MAX_ATTEMPTS": 2, "RETRY_BACKOFF": 0}
    session = spawn(workspace)
    submit(session, 1)
    instance = coordinator("a")
    later = timezone.now()
    for _ in range(3):  # three daemons died under it: more reclaims than MAX_ATTEMPTS
        later += timedelta(hours=1)
        [claim] = d.tasks_claim(instance=instance, limit=1, now=later)
        d.tasks_reclaim_expired(now=later + timedelta(minutes=1))
    task = Task.objects.get(pk=claim.task_id)
    assert (task.status, task.attempt, task.failures) == (Task.Status.READY, 3, 0)
    assert not Decision.objects.exists()
    # Failures reported by the runtime do count: the second one asks a human.
    for n in (1, 2):
        later += timedelta(hours=1)
        [claim] = d.tasks_claim(instance=instance, limit=1, now=later)
        d.task_results_apply(
            instance=instance, finished=[d.Finished(claim.task_id, claim.attempt, failed())], now=later
        )
        task.refresh_from_db()
        assert task.failures == n
    assert task.status == Task.Status.BLOCKED and task.attempt == 5
    decision = Decision.objects.get(task=task)
    assert decision.kind == "retries_exhausted" and "failed 2 times" in decision.question
    assert_counters_match_running_tasks()


def test_a_task_whose_daemons_keep_dying_asks_a_human_in_the_end(db, workspace):
    session = spawn(workspace)
    submit(session, 1)
    instance = coordinator("a")
    later = timezone.now()
    for _ in range(RECLAIM_LIMIT):
        later += timedelta(hours=1)
        [claim] = d.tasks_claim(instance=instance, limit=1, now=later)
        d.tasks_reclaim_expired(now=later + timedelta(minutes=1))
    task = Task.objects.get(pk=claim.task_id)
    assert task.status == Task.Status.BLOCKED and task.failures == 0
    assert Decision.objects.get(task=task).kind == "retries_exhausted"


def test_a_dead_daemon_s_work_and_agents_come_back_at_once_not_at_lease_expiry(db, workspace, settings):
    settings.HIVE = {**settings.HIVE, "LEASE_SECONDS": 3600, "HEARTBEAT_TIMEOUT": 5}
    session = spawn(workspace)
    submit(session, 1)
    victim, survivor = coordinator("victim"), coordinator("survivor")
    [claim] = d.tasks_claim(instance=victim, limit=1)
    silent = timezone.now() - timedelta(seconds=10)
    CoordinatorInstance.objects.filter(pk=victim.pk).update(heartbeat_at=silent)
    Agent.objects.update(heartbeat_at=timezone.now())  # the agent itself looks alive

    assert d.coordinators_mark_dead() == 1
    task = Task.objects.get(pk=claim.task_id)
    assert task.status == Task.Status.READY and task.lease_expires_at is None  # the lease had an hour to run
    assert task.failures == 0
    agent = Agent.objects.get()
    assert agent.active_tasks == 0 and agent.status == Agent.Status.IDLE
    [reclaimed] = CoordinationEvent.objects.filter(type="task_reclaimed")
    assert "coordinator victim stopped responding" in reclaimed.message
    assert TaskAttempt.objects.get(task=task, number=1).status == TaskAttempt.Status.RECLAIMED
    [again] = d.tasks_claim(instance=survivor, limit=1)
    assert (again.task_id, again.attempt) == (task.pk, 2)
    assert_counters_match_running_tasks()
