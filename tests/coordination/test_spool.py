"""Finished results survive a database outage: kept in memory and on disk, applied once when it is back."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError

from coordination.engine import APPLY_RETRIES
from coordination.models import CoordinationEvent, Task, TaskAttempt
from coordination.services import dispatch as d
from coordination.spool import ResultSpool, spool_dir

from .test_dispatch import member
from .test_engine import engines, spawn, submit, wait_for_results  # noqa: F401 - engines is a fixture


@pytest.fixture
def outage(monkeypatch):
    """Make applying results fail as an unreachable database does, until `outage.end()`."""
    real = d.task_results_apply

    class Outage:
        down = True
        calls = 0

        def end(self):
            self.down = False

    state = Outage()

    def apply(**kwargs):
        state.calls += 1
        if state.down:
            raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")
        return real(**kwargs)

    monkeypatch.setattr(d, "task_results_apply", apply)
    monkeypatch.setattr(d, "tasks_apply_and_claim", lambda **kw: (_ for _ in ()).throw(OperationalError("down")))
    return state


def test_results_are_kept_through_an_outage_and_applied_once(workspace, engines, outage):  # noqa: F811
    session = spawn(workspace, member(name="dev-a"), member(name="dev-b"))
    workflows = [submit(session, f"Job {i}") for i in range(2)]
    engine = engines(housekeeping_interval=3600)
    engine.tick()
    wait_for_results(engine, 2)
    for _ in range(APPLY_RETRIES + 3):  # more failures than the poisoned-result fallback allows
        with pytest.raises(OperationalError):
            engine._apply_results()
    assert len(engine.in_flight) == 2 and outage.calls >= APPLY_RETRIES + 3  # nothing dropped
    path = spool_dir() / f"results-{engine.instance.pk}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((line["task"], line["attempt"]) for line in lines) == sorted(engine.in_flight)
    assert {line["result"]["outcome"] for line in lines} == {"success"}

    outage.end()
    applied = engine._apply_results()
    assert applied["completed"] == 2 and not engine.in_flight
    assert not path.exists()
    for workflow in workflows:
        task = workflow.tasks.get()
        assert task.status == Task.Status.COMPLETED and task.attempt == 1
        assert TaskAttempt.objects.filter(task=task).count() == 1
    assert CoordinationEvent.objects.filter(type="task_completed").count() == 2


def test_a_new_daemon_applies_what_a_dead_one_kept_on_disk_fenced(workspace, engines):  # noqa: F811
    session = spawn(workspace, member(name="dev-a"), member(name="dev-b"))
    held, lost = submit(session, "Still held"), submit(session, "Reclaimed meanwhile")
    gone = d.coordinator_register(concurrency=2, name="died during the outage")
    claims = {c.task_id: c for c in d.tasks_claim(instance=gone, limit=2)}
    held_task, lost_task = held.tasks.get(), lost.tasks.get()
    d.tasks_release(
        tasks=list(Task.objects.filter(pk=lost_task.pk).select_related("workflow", "agent")),
        now=lost_task.created_at,
        attempt_status=TaskAttempt.Status.RECLAIMED,
        reason="lease expired",
        offline=True,
    )
    # What the dead daemon wrote before it died (its file is no longer locked by anyone).
    from agents.runtimes import Outcome, RuntimeResult

    spool = ResultSpool(gone.pk)
    spool.keep(
        {
            (c.task_id, c.attempt): RuntimeResult(outcome=Outcome.SUCCESS, summary="kept", simulated=True)
            for c in claims.values()
        }
    )
    spool.close()

    engines(housekeeping_interval=0).tick()
    held_task.refresh_from_db()
    lost_task.refresh_from_db()
    assert held_task.status == Task.Status.COMPLETED and held_task.result["summary"] == "kept"
    assert lost_task.result.get("summary") != "kept"  # its attempt lost the fence: rejected, not applied
    assert CoordinationEvent.objects.filter(type="task_result_rejected", task=lost_task).count() == 1
    assert not spool.path.exists()


def test_an_unreadable_spool_file_is_set_aside_and_never_stops_the_daemon(workspace, engines):  # noqa: F811
    spool_dir().mkdir(parents=True, exist_ok=True)
    bad = spool_dir() / "results-987654.jsonl"
    bad.write_text("{not json\n")
    try:
        report = engines(housekeeping_interval=0).tick()
        assert report.claimed == 0
        assert not bad.exists() and bad.with_suffix(".failed").exists()
    finally:
        bad.with_suffix(".failed").unlink(missing_ok=True)
        bad.unlink(missing_ok=True)
