"""The coordinator engine, driven in-process through Engine.tick()/drain()."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from waffle.testutils import override_switch

from agents.models import Agent
from coordination.engine import Engine
from coordination.models import CoordinationEvent, CoordinatorInstance, Decision, Session, Task, TaskAttempt, Workflow
from coordination.services import MemberSpec, WorkSpec, agent_pause, agent_resume, team_spawn, work_submit
from coordination.services import dispatch as d
from tests import conftest
from tests.coordination.test_dispatch import assert_counters_match_running_tasks, member

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engines(db):
    """Engines made by a test, all shut down at its end."""
    made: list[Engine] = []

    def make(**kwargs) -> Engine:
        kwargs.setdefault("concurrency", 2)
        kwargs.setdefault("housekeeping_interval", 0)
        engine = Engine(**kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.shutdown(grace=0)


def run_until_quiet(engine: Engine, *, max_ticks: int = 200) -> None:
    conftest.run_until_quiet(engine, max_ticks=max_ticks, drain_timeout=15)


def types(**filters) -> list[str]:
    return list(CoordinationEvent.objects.filter(**filters).order_by("id").values_list("type", flat=True))


def spawn(workspace, *members: MemberSpec) -> Session:
    return team_spawn(name="Engine crew", workspace=str(workspace), members=list(members))


def submit(session, title: str = "Work", *, pattern: str = "conflict_resolution", **kw) -> Workflow:
    return work_submit(session=session, work=WorkSpec(title=title, pattern=pattern, **kw))


def test_feature_delivery_runs_to_completion(crew, engines):
    workflow = work_submit(session=crew, work=WorkSpec(title="Add coupons", estimate_hours=10))
    run_until_quiet(engines())
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    steps = list(workflow.tasks.order_by("id").values_list("step", flat=True))
    assert steps == ["spec", "architecture", "implement", "review", "test", "ci"]
    seen = types(workflow=workflow)
    assert seen[0] == "work_submitted" and seen[-1] == "collaboration_completed"
    assert seen.count("task_assigned") == seen.count("task_completed") == 6
    assert_counters_match_running_tasks()
    assert set(Agent.objects.values_list("status", flat=True)) == {"idle"}


def test_tasks_touching_one_file_never_run_at_once(workspace, engines):
    session = spawn(workspace, member(name="dev-a", duration_s=0.2), member(name="dev-b", duration_s=0.2))
    first = submit(session, "First", files=["app/models.py"])
    second = submit(session, "Second", files=["app/models.py", "app/views.py"])
    other = submit(session, "Unrelated", files=["README.md"])
    engine = engines(concurrency=4)
    report = engine.tick()
    assert report.claimed == 2  # the first and the unrelated one; the second waits its turn
    running = set(Task.objects.filter(status="running").values_list("workflow_id", flat=True))
    assert running == {first.pk, other.pk}
    assert types(workflow=second)[-1] == "conflict_detected"
    engine.tick()  # a second look must not repeat the event
    assert types(workflow=second).count("conflict_detected") == 1
    run_until_quiet(engine)
    assert set(Workflow.objects.values_list("status", flat=True)) == {"completed"}
    assert types(workflow=second).count("conflict_resolved") == 1
    t1, t2 = Task.objects.get(workflow=first), Task.objects.get(workflow=second)
    assert t2.started_at >= t1.finished_at
    resolved = CoordinationEvent.objects.get(workflow=second, type="conflict_resolved")
    assert resolved.collaboration_data["serialised_after"] == t1.pk
    assert_counters_match_running_tasks()


def test_leases_are_renewed_while_work_runs(workspace, engines, settings):
    settings.HIVE = {**settings.HIVE, "LEASE_SECONDS": 3}
    spawn(workspace, member(name="dev-a", duration_s=30))
    submit(Session.objects.get(), "Long")
    engine = engines()
    engine.tick()
    task = Task.objects.get()
    first_lease = task.lease_expires_at
    engine._last_renew = time.monotonic() - 60  # due now
    engine.tick()
    task.refresh_from_db()
    assert task.lease_expires_at > first_lease
    assert task.status == Task.Status.RUNNING


def test_reclaimed_task_runs_again_and_the_late_result_is_rejected(workspace, engines):
    session = spawn(workspace, member(name="dev-a", duration_s=0.5))
    workflow = submit(session, "Reclaim me")
    slow = engines(housekeeping_interval=3600)
    slow.tick()  # claims attempt 1 and starts the runtime
    task = Task.objects.get()
    assert (task.attempt, task.lease_owner_id) == (1, slow.instance.pk)

    # Its lease runs out (the daemon stalled): another daemon reclaims the task and runs it again.
    assert d.tasks_reclaim_expired(now=timezone.now() + timedelta(hours=1)) == 1
    assert Agent.objects.get().active_tasks == 0
    rescuer = engines(housekeeping_interval=3600)
    rescuer.tick()
    task.refresh_from_db()
    assert (task.attempt, task.lease_owner_id) == (2, rescuer.instance.pk)
    rescuer.drain(timeout=10)
    slow.drain(timeout=10)  # the stalled daemon's result arrives late

    task.refresh_from_db()
    workflow.refresh_from_db()
    assert task.status == Task.Status.COMPLETED and workflow.status == Workflow.Status.COMPLETED
    seen = types(task=task)
    assert seen.count("task_reclaimed") == 1
    assert seen.count("task_result_rejected") == 1
    assert seen.count("task_completed") == 1
    rejected = CoordinationEvent.objects.get(type="task_result_rejected")
    assert rejected.collaboration_data["attempt"] == 1 and rejected.collaboration_data["current_attempt"] == 2
    assert list(TaskAttempt.objects.filter(task=task).values_list("number", "status")) == [
        (1, "reclaimed"),
        (2, "succeeded"),
    ]
    agent = Agent.objects.get()
    assert agent.tasks_completed == 1 and agent.active_tasks == 0
    assert_counters_match_running_tasks()


def test_a_runtime_that_lost_its_lease_is_stopped(workspace, engines):
    spawn(workspace, member(name="dev-a", duration_s=60))
    submit(Session.objects.get(), "Lost")
    engine = engines(housekeeping_interval=3600)
    engine.tick()
    d.tasks_reclaim_expired(now=timezone.now() + timedelta(hours=1))
    engine.renew_leases()
    [entry] = engine.in_flight.values()
    assert entry.cancel.is_set()
    engine.drain(timeout=10)  # the cancelled runtime returns at once; its result is rejected
    assert not engine.in_flight
    assert types().count("task_result_rejected") == 1
    assert Task.objects.get().status == Task.Status.READY


def test_runtime_error_is_retried_with_backoff_then_raises_a_decision(workspace, engines, settings):
    settings.HIVE = {**settings.HIVE, "MAX_ATTEMPTS": 3, "RETRY_BACKOFF": 30}
    missing = MemberSpec(
        role="developer", name="dev-a", runtime="command", runtime_config={"argv": ["hive-no-such-binary", "{title}"]}
    )
    workflow = submit(spawn(workspace, missing), "Broken tool")
    engine = engines()
    engine.tick()
    engine.drain(timeout=10)
    task = Task.objects.get()
    assert task.status == Task.Status.READY and task.attempt == 1
    assert "executable not found" in task.error
    assert task.not_before >= timezone.now() + timedelta(seconds=25)  # backoff: 30 s × 2⁰
    assert engine.tick().claimed == 0  # not before the backoff has passed

    for attempt in (2, 3):
        Task.objects.filter(pk=task.pk).update(not_before=timezone.now() - timedelta(seconds=1))  # time passes
        assert engine.tick().claimed == 1
        engine.drain(timeout=10)
        task.refresh_from_db()
        assert task.attempt == attempt
    retry = CoordinationEvent.objects.filter(type="task_retry_scheduled").order_by("id").last()
    assert retry.collaboration_data["delay_s"] == 60  # 30 s × 2¹

    task.refresh_from_db()
    workflow.refresh_from_db()
    assert task.status == Task.Status.BLOCKED
    assert workflow.status == Workflow.Status.WAITING_HUMAN
    decision = Decision.objects.get(task=task)
    assert decision.kind == "retries_exhausted" and decision.status == "open"
    seen = types(task=task)
    assert seen.count("task_failed") == 3
    assert seen.count("task_retry_scheduled") == 2
    assert seen[-1] == "decision_requested"
    assert list(TaskAttempt.objects.filter(task=task).values_list("status", flat=True)) == ["failed"] * 3
    assert engine.tick().claimed == 0
    assert_counters_match_running_tasks()


def test_paused_agent_takes_no_new_work(workspace, engines):
    session = spawn(workspace, member(name="dev-a"))
    agent = Agent.objects.get()
    agent_pause(agent=agent, reason="maintenance")
    submit(session, "Waits")
    engine = engines()
    assert engine.tick().claimed == 0
    assert Task.objects.get().status == Task.Status.READY
    agent_resume(agent=agent)
    run_until_quiet(engine)
    assert Task.objects.get().status == Task.Status.COMPLETED


def test_coordination_paused_switch_stops_claims_but_not_results(workspace, engines):
    session = spawn(workspace, member(name="dev-a", duration_s=0.3), member(name="dev-b", duration_s=0.3))
    submit(session, "Handoff", pattern="task_handoff")
    engine = engines()
    assert engine.tick().claimed == 1
    with override_switch("coordination_paused", active=True):
        engine.drain(timeout=10)  # the running task still finishes and hands off
        start = Task.objects.get(step="start")
        assert start.status == Task.Status.COMPLETED
        report = engine.tick()
        assert report.paused and report.claimed == 0
        assert Task.objects.get(step="finish").status == Task.Status.READY
        assert CoordinatorInstance.objects.get(pk=engine.instance.pk).heartbeat_at is not None
    report = engine.tick()
    assert not report.paused and report.claimed == 1
    run_until_quiet(engine)
    assert Workflow.objects.get().status == Workflow.Status.COMPLETED


def test_shutdown_hands_running_work_back(workspace, engines):
    spawn(workspace, member(name="dev-a", duration_s=60))
    submit(Session.objects.get(), "Interrupted")
    engine = engines()
    engine.tick()
    started = time.monotonic()
    assert engine.shutdown(grace=0, reason="test") == 1
    assert time.monotonic() - started < 30  # the runtime was cancelled, not waited for
    task = Task.objects.get()
    assert task.status == Task.Status.READY and task.lease_owner is None
    assert TaskAttempt.objects.get(task=task).status == TaskAttempt.Status.HANDED_BACK
    instance = CoordinatorInstance.objects.get(pk=engine.instance.pk)
    assert instance.status == CoordinatorInstance.Status.STOPPED
    assert types()[-1] == "coordinator_stopped"
    assert_counters_match_running_tasks()


# --- the command runtime, for real ----------------------------------------------------

HOSTILE = "Fix; rm -rf ~ && $(touch pwned) `touch pwned2` {workspace} 'quoted' \"dq\""


def git(workspace: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=workspace, check=True, capture_output=True, text=True).stdout


def test_command_runtime_commits_with_hostile_text_as_a_literal_argument(workspace, engines):
    git(workspace, "init", "-q")
    git(workspace, "config", "user.email", "crew@example.com")
    git(workspace, "config", "user.name", "Hive crew")
    developer = MemberSpec(
        role="developer",
        name="dev-git",
        runtime="command",
        runtime_config={"argv": ["git", "commit", "--allow-empty", "-q", "-m", "{title}"]},
    )
    workflow = submit(spawn(workspace, developer), HOSTILE, description="$(touch pwned3); rm -rf /")
    run_until_quiet(engines())
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED, Task.objects.get().error
    assert git(workspace, "log", "-1", "--format=%B").strip() == f"Merge {HOSTILE}"
    assert not any((workspace / name).exists() for name in ("pwned", "pwned2", "pwned3"))
    assert Path.home().exists()


def test_command_runtime_passes_task_text_as_argv_elements(workspace, engines):
    script = "import json, sys; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))"
    developer = MemberSpec(
        role="developer",
        name="dev-py",
        runtime="command",
        runtime_config={"argv": [sys.executable, "-c", script, "{title}", "--", "{description}", "{files}"]},
    )
    submit(spawn(workspace, developer), HOSTILE, description="$(touch pwned3)\n; ls", files=["a b.py", "-rf"])
    run_until_quiet(engines())
    argv = json.loads((workspace / "argv.json").read_text())
    assert argv == [f"Merge {HOSTILE}", "--", "$(touch pwned3)\n; ls", "a b.py", "-rf"]
    assert not any((workspace / name).exists() for name in ("pwned", "pwned2", "pwned3"))


# --- run_coordinator -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "--interval must be a positive number"),
        (["--concurrency", "0"], "--concurrency must be between 1 and 256"),
        (["--claim-batch", "0"], "--claim-batch must be at least 1"),
        (["--grace", "-1"], "--grace cannot be negative"),
        (["--team", "/no/such/team.json"], "no such file"),
    ],
)
def test_run_coordinator_rejects_bad_options(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("run_coordinator", "--once", *args, stdout=StringIO())


def team_file(tmp_path, workspace) -> Path:
    path = tmp_path / "team.json"
    path.write_text(
        json.dumps(
            {
                "name": "Autospawned",
                "workspace": str(workspace),
                "members": [{"role": "developer", "runtime": "scripted", "runtime_config": {"duration_s": 0}}],
                "backlog": [{"title": "First job", "pattern": "conflict_resolution"}],
            }
        )
    )
    return path


def test_run_coordinator_once_spawns_the_team_and_does_its_work(db, tmp_path, workspace):
    out = StringIO()
    call_command("run_coordinator", "--once", "--team", str(team_file(tmp_path, workspace)), stdout=out)
    session = Session.objects.get(name="Autospawned")
    assert "Spawned team" in out.getvalue() and "stopped cleanly" in out.getvalue()
    assert Task.objects.get(session=session).status == Task.Status.COMPLETED
    assert CoordinatorInstance.objects.get().status == CoordinatorInstance.Status.STOPPED


@pytest.mark.parametrize("how", ["flag", "switch"])
def test_run_coordinator_autospawn_can_be_turned_off(db, tmp_path, workspace, how):
    args = ["--once", "--team", str(team_file(tmp_path, workspace))]
    if how == "flag":
        call_command("run_coordinator", *args, "--no-autospawn", stdout=StringIO())
    else:
        with override_switch("autospawn_team", active=False):
            call_command("run_coordinator", *args, stdout=StringIO())
    assert not Session.objects.exists()
    with override_switch("autospawn_team", active=True):
        call_command("run_coordinator", *args, stdout=StringIO())
    assert Session.objects.filter(name="Autospawned").exists()


def test_run_coordinator_explains_an_unmigrated_database(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "HIVE_WORKSPACE_ROOT": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "manage.py", "run_coordinator", "--once", "--no-autospawn"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "unapplied migration(s); run `python manage.py migrate` first" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_task_of_many_is_assigned_once(workspace, engines):
    session = spawn(workspace, *[member(name=f"dev-{i}") for i in range(3)])
    for i in range(12):
        submit(session, f"Job {i}", pattern="task_handoff")
    a, b = engines(concurrency=2), engines(concurrency=3)
    for _ in range(100):
        busy = a.tick().busy | b.tick().busy
        a.drain(timeout=5)
        b.drain(timeout=5)
        if not busy and not a.in_flight and not b.in_flight and not Task.objects.exclude(status="completed").exists():
            break
    assert set(Workflow.objects.values_list("status", flat=True)) == {"completed"}
    assigned = Counter(
        (e.task_id, e.collaboration_data["attempt"]) for e in CoordinationEvent.objects.filter(type="task_assigned")
    )
    assert len(assigned) == Task.objects.count() == 24 and set(assigned.values()) == {1}
    assert Counter(CoordinationEvent.objects.filter(type="task_completed").values_list("task_id", flat=True)) == {
        t: 1 for t in Task.objects.values_list("pk", flat=True)
    }
    assert_counters_match_running_tasks()


def test_same_engine_running_a_reclaimed_task_again_applies_it_once(workspace, engines):
    spawn(workspace, member(name="dev-a", duration_s=1.5, concurrency=2))
    submit(Session.objects.get(), "Twice")
    engine = engines(housekeeping_interval=3600)
    engine.tick()
    d.tasks_reclaim_expired(now=timezone.now() + timedelta(hours=1))
    engine.tick()  # claims attempt 2 while attempt 1 still runs here
    task_id = Task.objects.get().pk
    assert sorted(engine.in_flight) == [(task_id, 1), (task_id, 2)]
    engine.renew_leases()  # the lease now belongs to attempt 2: only attempt 1 is told to stop
    assert engine.in_flight[(task_id, 1)].cancel.is_set()
    assert not engine.in_flight[(task_id, 2)].cancel.is_set()
    engine.drain(timeout=10)
    assert not engine.in_flight
    seen = types()
    assert seen.count("task_completed") == 1 and seen.count("task_result_rejected") == 1
    assert Task.objects.get().status == Task.Status.COMPLETED
    assert_counters_match_running_tasks()


def wait_for_results(engine: Engine, n: int) -> None:
    deadline = time.monotonic() + 15
    while sum(entry.result is not None for entry in engine.in_flight.values()) < n:
        assert time.monotonic() < deadline, "runtimes did not finish"
        engine.wake.wait(0.1)
        engine.wake.clear()


def test_a_busy_tick_applies_and_claims_in_one_transaction_and_one_publish(
    workspace, engines, monkeypatch, django_capture_on_commit_callbacks
):
    from django.db import connection

    from coordination import events

    session = spawn(workspace, member(name="dev-a"))
    workflow = submit(session, "Two steps", pattern="task_handoff")
    engine = engines(housekeeping_interval=3600)
    assert engine.tick().claimed == 1
    wait_for_results(engine, 1)
    published: list[list[dict]] = []
    monkeypatch.setattr(events, "publish", lambda payloads: published.append(list(payloads)))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = engine.tick()
    # The first step's result is applied and the step it handed over to is claimed, in the same tick.
    assert report.applied["completed"] == 1 and report.claimed == 1
    [second] = engine.in_flight
    assert Task.objects.get(pk=second[0]).step != Task.objects.filter(workflow=workflow).order_by("id")[0].step
    sent = [event["type"] for batch in published for event in batch]
    assert sent == types(id__gt=0)[-len(sent) :]  # in the order they were written
    assert {"task_completed", "task_handoff", "task_assigned"} <= set(sent)
    if connection.vendor == "postgresql":
        assert len(callbacks) == 1 and len(published) == 1  # one message per group for the whole tick
    engine.drain(timeout=15)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    assert_counters_match_running_tasks()


def test_a_failing_claim_in_the_combined_tick_loses_no_result(workspace, engines, monkeypatch):
    session = spawn(workspace, member(name="dev-a"))
    workflow = submit(session, "Two steps", pattern="task_handoff")
    engine = engines(housekeeping_interval=3600)
    engine.tick()
    wait_for_results(engine, 1)
    real_claim = d.tasks_claim
    calls = []

    def claim_failing_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("claim broke")
        return real_claim(**kwargs)

    monkeypatch.setattr(d, "tasks_claim", claim_failing_once)  # the engine's separate claim
    monkeypatch.setattr(d.results, "tasks_claim", claim_failing_once)  # the combined tick's claim
    report = engine.tick()
    # The combined transaction rolled back as a whole; the result was applied and the claim retried apart.
    assert report.applied["completed"] == 1 and report.claimed == 1
    assert len(calls) == 2
    first = Task.objects.filter(workflow=workflow).order_by("id")[0]
    assert first.status == Task.Status.COMPLETED
    assert types(task=first).count("task_completed") == 1
    assert TaskAttempt.objects.filter(task=first, status="succeeded").count() == 1
    engine.drain(timeout=15)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    assert_counters_match_running_tasks()


def test_live_daemons_split_the_agents_by_default(workspace, engines):
    session = spawn(workspace, *[member(name=f"dev-{i}", duration_s=30) for i in range(10)])
    for i in range(20):
        submit(session, f"Job {i}")
    first = engines(concurrency=10, claim_batch=10)
    second = engines(concurrency=10, claim_batch=10)
    third_gone = d.coordinator_register(concurrency=4, name="silent")
    CoordinatorInstance.objects.filter(pk=third_gone.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    first.tick()
    # Two live daemons, 20 ready tasks and 10 agent slots: ceil(min(20, 10) / 2) = 5 each.
    assert first.fair_share == 5 and len(first.in_flight) == 5
    second.tick()
    assert len(second.in_flight) == 5
    assert Task.objects.filter(status=Task.Status.RUNNING).count() == 10
    assert_counters_match_running_tasks()


def test_a_daemon_alone_claims_its_whole_batch(workspace, engines):
    session = spawn(workspace, *[member(name=f"dev-{i}", duration_s=30) for i in range(4)])
    for i in range(6):
        submit(session, f"Job {i}")
    alone = engines(concurrency=4, claim_batch=4)
    alone.tick()
    assert alone.fair_share is None and len(alone.in_flight) == 4
