"""The dispatcher's writes: claims, matching, leases, fencing, reclaim, hand-back."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone

from agents.models import Agent
from agents.runtimes import Outcome, RuntimeResult
from coordination.events import event_payload
from coordination.models import CoordinationEvent, CoordinatorInstance, Task, TaskAttempt
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from coordination.services import dispatch as d

MERGE = "conflict_resolution"  # one developer step ("merge"): success ends the workflow


def member(role: str = "developer", name: str = "", concurrency: int = 1, **config) -> MemberSpec:
    return MemberSpec(
        role=role, name=name, concurrency=concurrency, runtime="scripted", runtime_config={"duration_s": 0, **config}
    )


def spawn(workspace, *members: MemberSpec, name: str = "Dispatch crew"):
    return team_spawn(name=name, workspace=str(workspace), members=list(members) or [member()])


def submit(session, n: int = 1, *, pattern: str = MERGE, files=None, prefix: str = "Work"):
    return [
        work_submit(session=session, work=WorkSpec(title=f"{prefix} {i}", pattern=pattern, files=list(files or [])))
        for i in range(n)
    ]


def coordinator(name: str) -> CoordinatorInstance:
    return d.coordinator_register(concurrency=4, name=name)


def ok(summary: str = "done") -> RuntimeResult:
    return RuntimeResult(outcome=Outcome.SUCCESS, summary=summary, simulated=True)


def events(type_: str, **filters) -> list[CoordinationEvent]:
    return list(CoordinationEvent.objects.filter(type=type_, **filters).order_by("id"))


def assert_counters_match_running_tasks() -> None:
    """An agent's active_tasks is exactly the number of tasks it runs."""
    running = dict(
        Task.objects.filter(status=Task.Status.RUNNING)
        .values_list("agent_id")
        .annotate(n=Count("pk"))
        .values_list("agent_id", "n")
    )
    for agent in Agent.objects.all():
        assert agent.active_tasks == running.get(agent.pk, 0), f"{agent.name}: counter drifted"
        assert agent.active_tasks <= agent.concurrency


# --- claiming ----------------------------------------------------------------------


def test_claims_by_two_daemons_never_share_a_task(db, workspace):
    session = spawn(workspace, *[member(name=f"dev-{i}", concurrency=3) for i in range(4)])
    submit(session, 20)
    a, b = coordinator("a"), coordinator("b")
    claimed: list[tuple[int, int]] = []
    for _ in range(3):
        for instance in (a, b):
            claims = d.tasks_claim(instance=instance, limit=3)
            claimed += [(c.task_id, c.attempt) for c in claims]
            d.task_results_apply(
                instance=instance, finished=[d.Finished(c.task_id, c.attempt, ok()) for c in claims[:1]]
            )
    assert len(claimed) == len(set(claimed)) > 0
    assigned = Counter((e.task_id, e.collaboration_data["attempt"]) for e in events("task_assigned"))
    assert all(n == 1 for n in assigned.values())
    assert set(assigned) == set(claimed)
    assert TaskAttempt.objects.count() == len(claimed)
    assert_counters_match_running_tasks()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED concurrency needs PostgreSQL")
def test_concurrent_claims_skip_locked_rows(transactional_db, workspace):
    session = spawn(workspace, *[member(name=f"dev-{i}", concurrency=8) for i in range(8)])
    submit(session, 60)
    instances = [coordinator(f"c{i}") for i in range(4)]
    barrier = threading.Barrier(len(instances))
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(instance):
        try:
            barrier.wait(timeout=10)
            got = []
            for _ in range(5):
                got += [c.task_id for c in d.tasks_claim(instance=instance, limit=4)]
            results[instance.pk] = got
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    everything = [task_id for got in results.values() for task_id in got]
    assert len(everything) == len(set(everything)) == Task.objects.filter(status="running").count() > 0
    assert_counters_match_running_tasks()


def test_matching_prefers_the_least_loaded_agent(db, workspace):
    session = spawn(workspace, member(name="dev-a", concurrency=2), member(name="dev-b", concurrency=2))
    submit(session, 1)
    instance = coordinator("a")
    [first] = d.tasks_claim(instance=instance, limit=1)
    submit(session, 1, prefix="More")
    [second] = d.tasks_claim(instance=instance, limit=1)
    assert {first.agent_id, second.agent_id} == set(Agent.objects.values_list("pk", flat=True))


def test_matching_prefers_the_better_track_record_at_equal_load(db, workspace):
    session = spawn(workspace, member(name="dev-a"), member(name="dev-b"))
    weak, strong = Agent.objects.order_by("id")
    Agent.objects.filter(pk=weak.pk).update(success_patterns={"merge": {"ok": 1, "failed": 4}})
    Agent.objects.filter(pk=strong.pk).update(success_patterns={"merge": {"ok": 9, "failed": 1}})
    submit(session, 1)
    [claim] = d.tasks_claim(instance=coordinator("a"), limit=1)
    assert claim.agent_id == strong.pk


def test_paused_session_and_paused_agent_take_no_work(db, workspace):
    from coordination.services import agent_pause, agent_resume

    session = spawn(workspace, member(name="dev-a"))
    submit(session, 1)
    agent = Agent.objects.get()
    agent_pause(agent=agent, reason="lunch")
    instance = coordinator("a")
    assert d.tasks_claim(instance=instance, limit=5) == []
    agent_resume(agent=agent)
    assert len(d.tasks_claim(instance=instance, limit=5)) == 1


# --- leases, fencing, reclaim ------------------------------------------------------------


def test_lease_renewal_extends_only_the_owners_leases(db, workspace):
    session = spawn(workspace)
    submit(session, 1)
    owner, other = coordinator("owner"), coordinator("other")
    [claim] = d.tasks_claim(instance=owner, limit=1)
    before = Task.objects.get(pk=claim.task_id).lease_expires_at
    later = timezone.now() + timedelta(seconds=20)
    assert d.tasks_lease_renew(instance=other, task_ids=[claim.task_id], now=later) == {}
    assert Task.objects.get(pk=claim.task_id).lease_expires_at == before
    assert d.tasks_lease_renew(instance=owner, task_ids=[claim.task_id], now=later) == {claim.task_id: 1}
    task = Task.objects.get(pk=claim.task_id)
    assert task.lease_expires_at > before
    assert task.agent.heartbeat_at == later


def test_expired_lease_is_reclaimed_and_the_late_result_rejected(db, workspace):
    session = spawn(workspace, member(name="dev-a"))
    [workflow] = submit(session, 1)
    first, second = coordinator("first"), coordinator("second")
    [claim] = d.tasks_claim(instance=first, limit=1)
    agent = Agent.objects.get()
    assert agent.active_tasks == 1

    assert d.tasks_reclaim_expired(now=timezone.now()) == 0  # the lease still runs
    assert d.tasks_reclaim_expired(now=timezone.now() + timedelta(hours=1)) == 1
    task = Task.objects.get(pk=claim.task_id)
    assert task.status == Task.Status.READY and task.lease_owner is None
    agent.refresh_from_db()
    assert agent.active_tasks == 0 and agent.status == Agent.Status.IDLE
    assert TaskAttempt.objects.get(task=task, number=1).status == TaskAttempt.Status.RECLAIMED
    assert len(events("task_reclaimed", task=task)) == 1

    # The first daemon's result arrives after the reclaim: rejected, nothing applied.
    late = d.task_results_apply(instance=first, finished=[d.Finished(task.pk, 1, ok("late"))])
    assert late["rejected"] == 1 and late["completed"] == 0
    [again] = d.tasks_claim(instance=second, limit=1)
    assert (again.task_id, again.attempt) == (task.pk, 2)
    # Still rejected while attempt 2 runs, even carrying a success.
    assert d.task_results_apply(instance=first, finished=[d.Finished(task.pk, 1, ok("late"))])["rejected"] == 1
    assert d.task_results_apply(instance=second, finished=[d.Finished(task.pk, 2, ok())])["completed"] == 1
    assert d.task_results_apply(instance=second, finished=[d.Finished(task.pk, 2, ok())])["rejected"] == 1

    task.refresh_from_db()
    workflow.refresh_from_db()
    assert task.status == Task.Status.COMPLETED and workflow.status == "completed"
    assert len(events("task_completed", task=task)) == 1
    assert len(events("task_result_rejected", task=task)) == 3
    assert list(TaskAttempt.objects.filter(task=task).values_list("number", "status")) == [
        (1, "reclaimed"),
        (2, "succeeded"),
    ]
    assert Agent.objects.get().tasks_completed == 1
    assert_counters_match_running_tasks()


def test_two_results_for_one_attempt_in_one_batch_apply_once(db, workspace):
    session = spawn(workspace)
    submit(session, 1)
    instance = coordinator("a")
    [claim] = d.tasks_claim(instance=instance, limit=1)
    item = d.Finished(claim.task_id, claim.attempt, ok())
    counts = d.task_results_apply(instance=instance, finished=[item, item])
    assert counts["completed"] == 1 and counts["rejected"] == 1
    assert len(events("task_completed")) == 1
    assert_counters_match_running_tasks()


def test_tasks_of_a_stopped_daemon_are_reclaimed_without_waiting_for_the_lease(db, workspace):
    session = spawn(workspace)
    submit(session, 1)
    gone = coordinator("gone")
    [claim] = d.tasks_claim(instance=gone, limit=1)
    CoordinatorInstance.objects.filter(pk=gone.pk).update(status=CoordinatorInstance.Status.DEAD)
    assert d.tasks_reclaim_expired() == 1
    assert Task.objects.get(pk=claim.task_id).status == Task.Status.READY
    assert_counters_match_running_tasks()


def test_dead_agent_is_repaired(db, workspace):
    session = spawn(workspace, member(name="dev-a", concurrency=2))
    submit(session, 1)
    [claim] = d.tasks_claim(instance=coordinator("a"), limit=1)
    long_ago = timezone.now() - timedelta(hours=1)
    # A crash left the counter too high and the heartbeat stale.
    Agent.objects.update(active_tasks=2, heartbeat_at=long_ago)
    assert d.agents_reclaim_dead() == 1
    agent = Agent.objects.get()
    assert agent.active_tasks == 0 and agent.status == Agent.Status.IDLE
    assert Task.objects.get(pk=claim.task_id).status == Task.Status.READY
    assert len(events("task_reclaimed")) == 1
    assert_counters_match_running_tasks()


def test_hand_back_returns_work_to_the_queue(db, workspace):
    session = spawn(workspace)
    submit(session, 1)
    instance = coordinator("a")
    [claim] = d.tasks_claim(instance=instance, limit=1)
    assert d.tasks_hand_back(instance=instance, task_ids=[claim.task_id], reason="test") == 1
    task = Task.objects.get(pk=claim.task_id)
    assert task.status == Task.Status.READY and task.lease_owner is None
    assert TaskAttempt.objects.get(task=task).status == TaskAttempt.Status.HANDED_BACK
    assert len(events("task_handoff", task=task)) == 1
    assert_counters_match_running_tasks()


# --- daemons ---------------------------------------------------------------------------


def test_heartbeat_revives_a_daemon_declared_dead(db):
    instance = coordinator("slow")
    CoordinatorInstance.objects.filter(pk=instance.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert d.coordinators_mark_dead() == 1
    [dead] = events("coordinator_dead")
    assert dead.collaboration_data["coordinator"] == instance.pk
    assert d.coordinators_mark_dead() == 0  # once
    d.coordinator_heartbeat(instance=instance)
    assert CoordinatorInstance.objects.get(pk=instance.pk).status == CoordinatorInstance.Status.RUNNING


def test_event_payloads_published_match_the_stored_rows(db, workspace, django_capture_on_commit_callbacks, monkeypatch):
    published: list[dict] = []
    monkeypatch.setattr("coordination.events.publish", lambda payloads: published.extend(payloads))
    session = spawn(workspace)
    submit(session, 3)
    instance = coordinator("a")
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        claims = d.tasks_claim(instance=instance, limit=3)
        d.task_results_apply(instance=instance, finished=[d.Finished(c.task_id, c.attempt, ok()) for c in claims])
    assert published
    stored = {e.pk: event_payload(e) for e in CoordinationEvent.objects.filter(pk__in=[p["id"] for p in published])}
    for payload in published:
        assert payload == stored[payload["id"]]


def test_fencing_rejects_an_old_attempt_even_from_the_current_lease_owner(db, workspace):
    session = spawn(workspace)
    submit(session, 1)
    instance = coordinator("a")
    [old] = d.tasks_claim(instance=instance, limit=1)
    d.tasks_reclaim_expired(now=timezone.now() + timedelta(hours=1))
    [new] = d.tasks_claim(instance=instance, limit=1)  # the same daemon runs the task again
    assert (new.task_id, new.attempt) == (old.task_id, 2)
    counts = d.task_results_apply(
        instance=instance, finished=[d.Finished(old.task_id, 1, ok("stale")), d.Finished(new.task_id, 2, ok())]
    )
    assert counts["rejected"] == 1 and counts["completed"] == 1
    assert Task.objects.get(pk=old.task_id).result["summary"] == "done"
    assert_counters_match_running_tasks()
