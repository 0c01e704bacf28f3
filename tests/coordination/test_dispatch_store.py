"""The dispatcher's two implementations agree: PostgreSQL set-based SQL and the portable ORM.

Both run the same operations on the same fixture (rolled back to a savepoint in
between, sequences reset, so ids match too) and must leave the same rows and
publish the same events.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from agents.models import Agent
from agents.runtimes import Outcome, RuntimeResult
from coordination.models import CoordinationEvent, Decision, Task, TaskAttempt, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from coordination.services import dispatch as d
from coordination.services.dispatch.store import ORM, POSTGRESQL, store_forced

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="compares PostgreSQL SQL with the ORM")

MODELS = (Task, Agent, Workflow, TaskAttempt, Decision, CoordinationEvent)


def member(role: str, name: str, concurrency: int = 1) -> MemberSpec:
    return MemberSpec(role=role, name=name, concurrency=concurrency, runtime="scripted", runtime_config={})


def result(outcome=Outcome.SUCCESS, *, error: str = "", summary: str = "done") -> RuntimeResult:
    return RuntimeResult(
        outcome=outcome, summary=summary, error=error, simulated=True, tokens_in=3, tokens_out=5, cost_usd=0.01
    )


def fixture(workspace):
    session = team_spawn(
        name="Store crew",
        workspace=str(workspace),
        members=[
            member("developer", "dev-a", 2),
            member("developer", "dev-b"),
            member("reviewer", "rev-a"),
            member("architect", "arch-a"),
        ],
    )
    for i, (pattern, files) in enumerate(
        [
            ("conflict_resolution", ["a.py"]),
            ("conflict_resolution", ["a.py"]),  # waits for the first: same file
            ("pair_programming", []),
            ("task_handoff", []),
            ("code_review_cycle", ["b.py"]),
            ("conflict_resolution", []),
        ]
    ):
        work_submit(session=session, work=WorkSpec(title=f"Work {i}", pattern=pattern, files=files))
    return session


def scenario(instance, now) -> list:
    """Claims, results of every kind, lease expiry, dead agents, hand-back: what one daemon's life does."""
    steps = []
    claims = d.tasks_claim(instance=instance, limit=4, now=now)
    steps.append([(c.task_id, c.attempt, c.agent_id, c.context) for c in claims])
    outcomes = [result(Outcome.FAILURE, error="boom"), result(), result(), result(Outcome.CHANGES_REQUESTED)]
    finished = [d.Finished(c.task_id, c.attempt, r) for c, r in zip(claims, outcomes, strict=False)]
    finished.append(d.Finished(claims[0].task_id, claims[0].attempt, result(summary="duplicate")))
    steps.append(d.task_results_apply(instance=instance, finished=finished, now=now))
    later = now + timedelta(seconds=1)
    counts, claims = d.tasks_apply_and_claim(instance=instance, finished=[], limit=5, now=later)
    steps.append((counts, [(c.task_id, c.attempt, c.agent_id) for c in claims]))
    expired = later + timedelta(hours=1)
    steps.append(d.tasks_reclaim_expired(now=expired))
    claims = d.tasks_claim(instance=instance, limit=5, now=expired)
    steps.append([(c.task_id, c.attempt, c.agent_id) for c in claims])
    steps.append(d.agents_reclaim_dead(now=expired + timedelta(hours=1)))
    claims = d.tasks_claim(instance=instance, limit=5, now=expired + timedelta(hours=1))
    steps.append(d.tasks_hand_back(instance=instance, task_ids=[c.task_id for c in claims], reason="test", now=expired))
    return steps


def snapshot() -> dict:
    return {model.__name__: [model_to_dict(row) for row in model.objects.order_by("pk")] for model in MODELS}


def sequences() -> list[tuple[str, int, bool]]:
    out = []
    with connection.cursor() as cursor:
        for model in MODELS:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [model._meta.db_table])
            [name] = cursor.fetchone()
            cursor.execute(f"SELECT last_value, is_called FROM {name}")
            out.append((name, *cursor.fetchone()))
    return out


def sequences_reset(saved) -> None:
    with connection.cursor() as cursor:
        for name, value, called in saved:
            cursor.execute("SELECT setval(%s, %s, %s)", [name, value, called])


def run(implementation, instance, now, capture) -> tuple[list, dict, list]:
    with store_forced(implementation), capture(execute=True) as callbacks:
        steps = scenario(instance, now)
    assert callbacks
    published = list(PUBLISHED)
    PUBLISHED.clear()
    return steps, snapshot(), published


PUBLISHED: list[dict] = []


def test_postgresql_and_orm_implementations_write_the_same_rows_and_events(
    db, workspace, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("coordination.events.publish", lambda payloads: PUBLISHED.extend(payloads))
    fixture(workspace)
    instance = d.coordinator_register(concurrency=4, name="store")
    now = timezone.now()
    PUBLISHED.clear()
    saved = sequences()
    savepoint = transaction.savepoint()
    orm = run(ORM, instance, now, django_capture_on_commit_callbacks)
    transaction.savepoint_rollback(savepoint)
    sequences_reset(saved)
    pg = run(POSTGRESQL, instance, now, django_capture_on_commit_callbacks)

    orm_steps, orm_rows, orm_events = orm
    pg_steps, pg_rows, pg_events = pg
    assert pg_steps == orm_steps
    for model in MODELS:
        assert pg_rows[model.__name__] == orm_rows[model.__name__], model.__name__
    assert pg_events == orm_events
    # The scenario went through what it is meant to compare.
    kinds = {e["type"] for e in pg_events}
    assert {
        "task_assigned",
        "task_completed",
        "task_failed",
        "task_retry_scheduled",
        "task_result_rejected",
        "task_reclaimed",
        "task_handoff",
        "conflict_detected",
        "pair_programming",
        "agent_offline",
    } <= kinds, kinds
