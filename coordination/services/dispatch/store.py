"""Where the dispatcher reads and writes rows: one interface, two implementations.

`OrmStore` is portable (SQLite and any database Django supports). `PgStore`
does the same reads and writes set-based on PostgreSQL (sql.py): plain rows in,
one statement per tick out. `store()` is the one place that picks between
them; claims, results and recovery only ever call `store()`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Sum

from agents.models import Agent

from ...events import EventDraft, events_record
from ...models import Session, Task, TaskAttempt, Workflow
from .. import locks
from ..flow import WORKFLOW_FIELDS, FlowBatch, batch_flush
from . import sql

TASK_CLAIM_FIELDS = [
    "status",
    "agent",
    "pair_agent",
    "attempt",
    "lease_owner",
    "lease_expires_at",
    "started_at",
    "simulated",
    "result",
]
TASK_RESULT_FIELDS = [
    "status",
    "failures",
    "outcome",
    "result",
    "error",
    "finished_at",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "lease_owner",
    "lease_expires_at",
    "not_before",
    "ready_at",
    "simulated",
]
AGENT_RESULT_FIELDS = ["active_tasks", "status", "heartbeat_at", "tasks_completed", "tasks_failed", "success_patterns"]


@dataclass(frozen=True)
class Capacity:
    """Where a claim can place work: sessions and roles with a free agent, and how many tasks at most."""

    sessions: list[int]
    roles: list[str]
    wanted: int

    @property
    def fetch(self) -> int:
        # Some headroom past what can run, for tasks no free agent can take (role, files).
        return self.wanted + min(self.wanted, 16)


# A claim's choices, as tasks_claim makes them: (task, agent, navigator or None) and (task, blocking task id).
Claimed = list[tuple]
Held = list[tuple]
AttemptClose = tuple[int, int, str, str]  # task id, attempt number, attempt status, summary


class OrmStore:
    """The portable implementation: Django's ORM, a few statements per operation."""

    name = "orm"

    # --- plain writes ---

    def bulk_set(self, model, objs: list, fields: list[str]) -> None:
        """Write `fields` of many rows (bulk_update; on SQLite inside the same IMMEDIATE transaction)."""
        if objs:
            model.objects.bulk_update(objs, fields)

    def events_write(self, drafts: list[EventDraft], *, now) -> None:
        """Insert `drafts` as events and publish them after commit."""
        if drafts:
            events_record(drafts, now=now)

    def flush(self, batch: FlowBatch, *, now) -> None:
        """Write what a FlowBatch collected: workflows and events so far, then new tasks, decisions and theirs."""
        workflows = list(batch.workflows.values())
        batch.workflows.clear()
        drafts, batch.events = batch.events, []
        self.bulk_set(Workflow, workflows, WORKFLOW_FIELDS)
        self.events_write(drafts, now=now)
        batch_flush(batch, now=now, record=self.events_write)

    # --- claims ---

    def capacity(self, *, limit: int) -> Capacity | None:
        rows = list(
            Agent.objects.available()
            .filter(session__status=Session.Status.ACTIVE)
            .values_list("session_id", "role")
            .annotate(free=Sum(F("concurrency") - F("active_tasks")))
        )
        return _capacity(rows, limit)

    def claim_candidates(self, *, capacity: Capacity, now) -> list:
        """Ready tasks where there is capacity, best first, locked SKIP LOCKED, with workflow and session fields."""
        return list(
            Task.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Task.Status.READY, session_id__in=capacity.sessions, role__in=capacity.roles)
            .exclude(not_before__gt=now)
            .select_related("workflow")
            .annotate(session_workspace=F("session__workspace"), session_goal=F("session__goal"))
            .order_by("-priority", "id")[: capacity.fetch]
        )

    def claim_agents(self, *, session_ids: set[int], roles: set[str] | None) -> list:
        """Lock the agents a claim may use (SKIP LOCKED, id order): free ones of `roles`, or any working one."""
        query = Agent.objects.select_for_update(skip_locked=True).filter(session_id__in=session_ids)
        if roles is None:  # navigators may be of any role and busy
            query = query.exclude(status__in=[Agent.Status.OFFLINE, Agent.Status.ERROR])
        else:
            query = query.available().filter(role__in=roles)
        return list(query.order_by("id"))

    def claim_write(
        self, *, held: Held, claimed: Claimed, touched: dict, drafts: list[EventDraft], instance, now, lease
    ) -> None:
        """Record waiting tasks' blockers; lease claimed tasks, load their agents, open attempts; write events."""
        self.bulk_set(Task, [t for t, _ in held], ["result"])
        if claimed:
            for task, _, _ in claimed:
                task.lease_owner = instance
                task.lease_expires_at = now + lease
                task.started_at = now
            self.bulk_set(Task, [t for t, _, _ in claimed], TASK_CLAIM_FIELDS)
            for agent in touched.values():
                agent.heartbeat_at = now
            self.bulk_set(Agent, list(touched.values()), ["active_tasks", "status", "heartbeat_at"])
            TaskAttempt.objects.bulk_create(
                [
                    TaskAttempt(task=task, number=task.attempt, agent=agent, coordinator=instance, started_at=now)
                    for task, agent, _ in claimed
                ]
            )
            for task, _, navigator in claimed:
                if navigator is not None:
                    Workflow.objects.filter(pk=task.workflow_id).update(state=task.workflow.state)
        self.events_write(drafts, now=now)

    # --- results ---

    def results_tasks(self, task_ids: list[int]) -> dict[int, Task]:
        """The tasks of `task_ids` with their workflows, locked in id order."""
        return locks.tasks(task_ids, related=("workflow",))

    def agents_locked(self, agent_ids: list[int]) -> dict[int, Agent]:
        """The agents of `agent_ids`, locked in id order."""
        return locks.agents(agent_ids)

    def results_write(
        self,
        *,
        attempts: list[AttemptClose],
        outcomes: dict[int, str],
        tasks: list[Task],
        agents: list[Agent],
        batch: FlowBatch,
        now,
    ) -> None:
        """Close attempts, write finished tasks and their agents, then the batch (workflows, new work, events)."""
        self._attempts_close(attempts, outcomes=outcomes, now=now)
        self.bulk_set(Task, tasks, TASK_RESULT_FIELDS)
        self.bulk_set(Agent, agents, AGENT_RESULT_FIELDS)
        self.flush(batch, now=now)

    def _attempts_close(self, rows: list[AttemptClose], *, outcomes: dict[int, str], now) -> None:
        if not rows:
            return
        attempts = list(TaskAttempt.objects.filter(task_id__in=[r[0] for r in rows], status=TaskAttempt.Status.RUNNING))
        wanted = {(r[0], r[1]): r for r in rows}
        for attempt in attempts:
            row = wanted.get((attempt.task_id, attempt.number))
            if row is None:
                continue
            attempt.status = row[2]
            attempt.summary = row[3]
            attempt.outcome = outcomes.get(attempt.task_id, "")
            attempt.finished_at = now
        self.bulk_set(TaskAttempt, attempts, ["status", "summary", "outcome", "finished_at"])


class PgStore(OrmStore):
    """PostgreSQL: the same reads as plain rows, the same writes as one set-based statement (sql.py)."""

    name = "postgresql"

    def bulk_set(self, model, objs: list, fields: list[str]) -> None:
        if objs:
            sql.execute(*sql.bulk_set(model, objs, fields))

    def events_write(self, drafts: list[EventDraft], *, now) -> None:
        if drafts:
            sql.writes_run([], drafts, now=now)

    def flush(self, batch: FlowBatch, *, now, writes: list[sql.Write] | None = None) -> None:
        """`writes`, the workflows and the events so far are one statement; new tasks and decisions follow."""
        workflows = list(batch.workflows.values())
        batch.workflows.clear()
        drafts, batch.events = batch.events, []
        writes = list(writes or [])
        if workflows:
            writes.append(sql.bulk_set(Workflow, workflows, WORKFLOW_FIELDS))
        sql.writes_run(writes, drafts, now=now)
        batch_flush(batch, now=now, record=self.events_write)

    def capacity(self, *, limit: int) -> Capacity | None:
        return _capacity(sql.capacity(), limit)

    def claim_candidates(self, *, capacity: Capacity, now) -> list:
        return sql.candidates(sessions=capacity.sessions, roles=capacity.roles, count=capacity.fetch, now=now)

    def claim_agents(self, *, session_ids: set[int], roles: set[str] | None) -> list:
        return sql.claim_agents(session_ids=session_ids, roles=roles)

    def claim_write(
        self, *, held: Held, claimed: Claimed, touched: dict, drafts: list[EventDraft], instance, now, lease
    ) -> None:
        writes = sql.held_writes(held)
        if claimed:
            writes += sql.claim_writes(claimed, touched, instance=instance, now=now, lease=lease)
        sql.writes_run(writes, drafts, now=now)

    def results_tasks(self, task_ids: list[int]) -> dict[int, Task]:
        locks.taken("task")
        return sql.tasks_locked_with_workflows(task_ids)

    def agents_locked(self, agent_ids: list[int]) -> dict[int, Agent]:
        locks.taken("agent")
        return sql.models_locked(Agent, agent_ids)

    def results_write(self, *, attempts, outcomes, tasks, agents, batch, now) -> None:
        # Attempts, tasks, agents, workflows and events: one statement.
        writes = []
        if attempts:
            writes.append(sql.attempts_close(attempts, outcomes=outcomes, now=now))
        if tasks:
            writes.append(sql.bulk_set(Task, tasks, TASK_RESULT_FIELDS))
        if agents:
            writes.append(sql.bulk_set(Agent, agents, AGENT_RESULT_FIELDS))
        self.flush(batch, now=now, writes=writes)


def _capacity(rows: list[tuple[int, str, int]], limit: int) -> Capacity | None:
    if not rows:
        return None
    return Capacity(
        sessions=sorted({s for s, _, _ in rows}),
        roles=sorted({r for _, r, _ in rows}),
        wanted=min(limit, sum(free for _, _, free in rows)),
    )


ORM = OrmStore()
POSTGRESQL = PgStore()
_forced = threading.local()


def store() -> OrmStore:
    """The implementation for the current connection: PgStore on PostgreSQL, OrmStore elsewhere."""
    forced = getattr(_forced, "store", None)
    if forced is not None:
        return forced
    return POSTGRESQL if connection.vendor == "postgresql" else ORM


@contextmanager
def store_forced(implementation: OrmStore):
    """Run the dispatcher with `implementation` (the equivalence test runs the portable one on PostgreSQL)."""
    previous = getattr(_forced, "store", None)
    _forced.store = implementation
    try:
        yield
    finally:
        _forced.store = previous
