"""Real run_coordinator processes sharing one PostgreSQL database: no double work, crash recovery, clean stop.

Each test starts daemons as subprocesses against the test database (its name
comes from the test connection), with short leases so recovery takes seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.db.models import Count

from agents.models import Agent
from coordination.models import CoordinationEvent, CoordinatorInstance, Task, TaskAttempt, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3
HEARTBEAT_TIMEOUT = 5

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several daemons need PostgreSQL (SKIP LOCKED)"),
]


def database_url() -> str:
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{s['NAME']}"


class Daemons:
    """Starts run_coordinator subprocesses; `stop_all` kills whatever is left."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        overrides, env = (
            env or {},
            {
                **os.environ,
                "DATABASE_URL": database_url(),
                "HIVE_LEASE_SECONDS": str(LEASE_SECONDS),
                "HIVE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
                "HIVE_TEAM_CONFIG": "",
                "PYTHONUNBUFFERED": "1",
            },
        )
        env.update(overrides)
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_coordinator", "--no-autospawn", "--name", name, "--interval", "0.1"]
            + list(extra),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append((name, proc))
        return proc

    def output(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))

    def stop_all(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for _, proc in self.procs:
            proc.wait(timeout=30)


@pytest.fixture
def daemons(transactional_db, tmp_path):
    manager = Daemons(tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, daemons: Daemons) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for name, proc in daemons.procs:
            if proc.poll() is not None and proc.returncode not in (0, -signal.SIGKILL):
                pytest.fail(f"daemon {name} exited with {proc.returncode} while waiting for {what}\n{daemons.output()}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{daemons.output()}")


def running_daemons(n: int) -> Callable[[], bool]:
    return lambda: CoordinatorInstance.objects.filter(status="running").count() >= n


def scripted(name: str, duration: float, concurrency: int = 1) -> MemberSpec:
    return MemberSpec(
        role="developer",
        name=name,
        runtime="scripted",
        concurrency=concurrency,
        runtime_config={"duration_s": duration},
    )


def assert_each_task_done_exactly_once() -> None:
    assigned = Counter(
        (task_id, data["attempt"])
        for task_id, data in CoordinationEvent.objects.filter(type="task_assigned").values_list(
            "task_id", "collaboration_data"
        )
    )
    doubled = {key: n for key, n in assigned.items() if n > 1}
    assert not doubled, f"task attempts assigned more than once: {doubled}"
    attempts = Counter(TaskAttempt.objects.values_list("task_id", "number"))
    assert set(attempts.values()) == {1}
    assert set(attempts) == set(assigned)
    succeeded = Counter(TaskAttempt.objects.filter(status="succeeded").values_list("task_id", flat=True))
    completed = Counter(CoordinationEvent.objects.filter(type="task_completed").values_list("task_id", flat=True))
    task_ids = set(Task.objects.values_list("pk", flat=True))
    assert succeeded == {t: 1 for t in task_ids}, "one succeeded attempt per task"
    assert completed == {t: 1 for t in task_ids}, "one task_completed event per task"
    assert not TaskAttempt.objects.filter(status="running").exists()


def assert_agents_settled() -> None:
    running = dict(
        Task.objects.filter(status="running")
        .values_list("agent_id")
        .annotate(n=Count("pk"))
        .values_list("agent_id", "n")
    )
    for agent in Agent.objects.all():
        assert agent.active_tasks == running.get(agent.pk, 0), f"{agent.name}: load counter drifted"


def test_two_daemons_share_200_tasks_without_double_assignment(daemons, tmp_path):
    session = team_spawn(
        name="Shared queue",
        workspace=str(tmp_path / "ws"),
        members=[scripted(f"dev-{i}", duration=0.02, concurrency=2) for i in range(10)],
    )
    daemons.start("alpha", "--concurrency", "6")
    daemons.start("beta", "--concurrency", "6")
    wait_for(running_daemons(2), timeout=60, what="both daemons to start", daemons=daemons)
    for i in range(200):
        work_submit(session=session, work=WorkSpec(title=f"Job {i}", pattern="conflict_resolution"))
    wait_for(
        lambda: Workflow.objects.filter(status="completed").count() == 200,
        timeout=120,
        what="200 workflows to complete",
        daemons=daemons,
    )
    assert Task.objects.count() == 200
    assert_each_task_done_exactly_once()
    by_daemon = Counter(TaskAttempt.objects.values_list("coordinator__name", flat=True))
    assert set(by_daemon) == {"alpha", "beta"}, f"both daemons should have worked: {by_daemon}"
    assert sum(by_daemon.values()) == 200
    assert_agents_settled()


def test_killed_daemon_work_is_reclaimed_and_completed_once(daemons, tmp_path):
    session = team_spawn(
        name="Crash",
        workspace=str(tmp_path / "ws"),
        members=[scripted("dev-a", duration=2.5), scripted("dev-b", duration=2.5)],
    )
    victim = daemons.start("victim", "--concurrency", "2")
    wait_for(running_daemons(1), timeout=60, what="the first daemon to start", daemons=daemons)
    workflow = work_submit(session=session, work=WorkSpec(title="Survive a crash", pattern="task_handoff"))
    assigned = wait_for(
        lambda: CoordinationEvent.objects.filter(type="task_assigned", workflow=workflow).first(),
        timeout=30,
        what="the first task to be assigned",
        daemons=daemons,
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    first = Task.objects.get(pk=assigned.task_id)
    assert first.status == Task.Status.RUNNING  # killed in the middle of the task

    daemons.start("rescuer", "--concurrency", "2")
    wait_for(
        lambda: CoordinationEvent.objects.filter(type="task_reclaimed", task=first).exists(),
        timeout=60,
        what="the rescuer to reclaim the task after the lease expired",
        daemons=daemons,
    )
    wait_for(
        lambda: Workflow.objects.filter(pk=workflow.pk, status="completed").exists(),
        timeout=60,
        what="the workflow to complete",
        daemons=daemons,
    )
    assert list(TaskAttempt.objects.filter(task=first).values_list("number", "status", "coordinator__name")) == [
        (1, "reclaimed", "victim"),
        (2, "succeeded", "rescuer"),
    ]
    assert list(workflow.tasks.order_by("id").values_list("step", "status")) == [
        ("start", "completed"),
        ("finish", "completed"),
    ]
    assert_each_task_done_exactly_once()
    assert_agents_settled()


def test_a_dead_daemon_s_work_comes_back_at_heartbeat_timeout_not_lease_expiry(daemons, tmp_path):
    session = team_spawn(name="Dead", workspace=str(tmp_path / "ws"), members=[scripted("dev-a", duration=4)])
    long_lease = {"HIVE_LEASE_SECONDS": "120", "HIVE_HEARTBEAT_TIMEOUT": "3"}
    daemons.start("victim", env=long_lease)
    wait_for(running_daemons(1), timeout=60, what="the first daemon to start", daemons=daemons)
    daemons.start("rescuer", env=long_lease)
    wait_for(running_daemons(2), timeout=60, what="the rescuer to start", daemons=daemons)
    workflow = work_submit(session=session, work=WorkSpec(title="Outlive a daemon", pattern="conflict_resolution"))
    wait_for(
        lambda: TaskAttempt.objects.filter(task__workflow=workflow).exists(),
        timeout=30,
        what="the task to be assigned",
        daemons=daemons,
    )
    attempt = TaskAttempt.objects.select_related("coordinator").get(task__workflow=workflow)
    holder = dict(daemons.procs)[attempt.coordinator.name]
    killed_at = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    reclaimed = wait_for(
        lambda: CoordinationEvent.objects.filter(type="task_reclaimed", workflow=workflow).first(),
        timeout=60,
        what="the survivor to reclaim the dead daemon's task",
        daemons=daemons,
    )
    # Within heartbeat timeout plus a housekeeping round or two, far from the 120 s lease.
    assert time.monotonic() - killed_at < 30
    assert f"coordinator {attempt.coordinator.name} stopped responding" in reclaimed.message
    assert CoordinationEvent.objects.filter(type="coordinator_dead").count() == 1
    wait_for(
        lambda: Workflow.objects.filter(pk=workflow.pk, status="completed").exists(),
        timeout=60,
        what="the workflow to complete",
        daemons=daemons,
    )
    task = workflow.tasks.get()
    assert task.failures == 0  # the daemon's death was not the task's failure
    assert list(TaskAttempt.objects.filter(task=task).order_by("number").values_list("status", flat=True)) == [
        "reclaimed",
        "succeeded",
    ]
    assert_each_task_done_exactly_once()
    assert_agents_settled()


def test_sigterm_hands_in_flight_work_back_and_exits_cleanly(daemons, tmp_path):
    session = team_spawn(name="Stop", workspace=str(tmp_path / "ws"), members=[scripted("dev-a", duration=60)])
    proc = daemons.start("stopper", "--grace", "1")
    wait_for(running_daemons(1), timeout=60, what="the daemon to start", daemons=daemons)
    workflow = work_submit(session=session, work=WorkSpec(title="Long job", pattern="conflict_resolution"))
    wait_for(
        lambda: CoordinationEvent.objects.filter(type="task_assigned", workflow=workflow).exists(),
        timeout=30,
        what="the task to be assigned",
        daemons=daemons,
    )
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"daemon did not stop within 20 s of SIGTERM (grace 1 s)\n{daemons.output()}")
    assert code == 0, daemons.output()
    assert "1 task(s) handed back" in daemons.output()
    task = Task.objects.get(workflow=workflow)
    assert task.status == Task.Status.READY and task.lease_owner is None
    assert TaskAttempt.objects.get(task=task).status == TaskAttempt.Status.HANDED_BACK
    instance = CoordinatorInstance.objects.get(name="stopper")
    assert instance.status == CoordinatorInstance.Status.STOPPED and instance.stopped_at is not None
    stopped = CoordinationEvent.objects.filter(type="coordinator_stopped").last()
    assert stopped is not None and stopped.collaboration_data["coordinator"] == instance.pk
    assert_agents_settled()
    assert Agent.objects.get().status == Agent.Status.IDLE
