"""The dispatcher's writes: claim ready work, renew leases, apply results,
reclaim what dead daemons left behind, hand work back on shutdown.

Every function is set-based: one tick claims or finishes many tasks with a
fixed number of statements, so throughput does not pay a round trip per task.
Lock order is always tasks before agents (claims skip locked rows), so two
daemons never deadlock.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, Q, Sum, Value, When
from django.utils import timezone

from agents.models import Agent
from agents.runtimes import Outcome, RuntimeResult, TaskContext

from .. import events, patterns
from ..events import EventDraft, event_record, events_record, participant, participants
from ..models import CoordinationEvent, CoordinatorInstance, Session, Task, TaskAttempt, Workflow
from .flow import FlowBatch, batch_flush, decision_draft, move_apply

E = CoordinationEvent.Type
OUTPUT_LIMIT = 16_000


@dataclass(frozen=True)
class Claim:
    """A task leased to this daemon for one attempt, with what its runtime needs."""

    task_id: int
    attempt: int
    agent_id: int
    runtime: str
    runtime_config: dict
    context: TaskContext


@dataclass(frozen=True)
class Finished:
    task_id: int
    attempt: int
    result: RuntimeResult


# --- Set-based writes -------------------------------------------------------------


def bulk_set(model, objs: list, fields: list[str]) -> None:
    """Write `fields` of many rows in one statement.

    PostgreSQL: one UPDATE … FROM unnest(arrays), one parameter per column
    whatever the batch size (Django's bulk_update builds a CASE WHEN per row and
    field, which costs more Python than the database work). Elsewhere
    bulk_update, which on SQLite runs inside the same IMMEDIATE transaction.
    """
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, fields)
        return
    _execute_binary(*_bulk_set_sql(model, objs, fields))


def _bulk_set_sql(model, objs: list, fields: list[str]) -> tuple[str, list]:
    """bulk_set's UPDATE … FROM unnest statement and its parameters (PostgreSQL)."""
    meta = model._meta
    pk = meta.pk
    columns = [f'"{pk.column}"']
    casts = [f"%b::{pk.db_type(connection)}[]"]
    assignments = []
    params: list[list] = [[obj.pk for obj in objs]]
    for name in fields:
        field = meta.get_field(name)
        column = f'"{field.column}"'
        columns.append(column)
        if field.get_internal_type() == "JSONField":
            params.append([json.dumps(getattr(obj, field.attname), cls=field.encoder) for obj in objs])
            casts.append("%b::text[]")
            assignments.append(f"{column} = v.{column}::jsonb")
        else:
            # psycopg adapts these values as they are (what get_db_prep_save returns on PostgreSQL too).
            attname = field.attname
            params.append([getattr(obj, attname) for obj in objs])
            casts.append(f"%b::{field.db_type(connection)}[]")
            assignments.append(f"{column} = v.{column}")
    sql = (
        f'UPDATE "{meta.db_table}" AS t SET {", ".join(assignments)} '
        f"FROM unnest({', '.join(casts)}) AS v({', '.join(columns)}) "
        f'WHERE t."{pk.column}" = v."{pk.column}"'
    )
    return sql, params


def _execute_binary(sql: str, params: list, *, fetch: bool = False, binary: bool = False) -> list[tuple]:
    """Run `sql` on a server-binding cursor of Django's connection (same transaction).

    Arrays travel in binary instead of being quoted element by element in Python,
    as Django's client-side binding cursor does. Errors go through Django's
    wrapper, so they surface as django.db errors and a broken connection is
    closed by close_old_connections() like any other. With `binary`, results come
    in binary too (timestamps, numbers and jsonb decoded without text parsing).
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=binary)
        return cursor.fetchall() if fetch else []


EVENT_COLUMNS = (
    ("type", "varchar"),
    ("message", "varchar"),
    ("session_id", "bigint"),
    ("workflow_id", "bigint"),
    ("task_id", "bigint"),
    ("agent_id", "bigint"),
    ("participants", "jsonb"),
    ("collaboration_data", "jsonb"),
    ("business_impact", "jsonb"),
    ("simulated", "boolean"),
)


def events_write(drafts: list[EventDraft], *, now) -> None:
    """events_record for the hot path: one INSERT … SELECT FROM unnest on PostgreSQL, one publish on commit.

    Writes the same rows and publishes the same payloads (`event_payload`'s shape)
    without building a model instance per event.
    """
    if not drafts:
        return
    if connection.vendor != "postgresql":
        events_record(drafts, now=now)
        return
    writes_run([], drafts, now=now)


def _events_insert(drafts: list[EventDraft], *, now) -> tuple[str, list, list[str]]:
    """The INSERT … SELECT FROM unnest of `drafts` (RETURNING id), its parameters and the stored messages."""
    messages = [d.message[:500] for d in drafts]
    dumps = json.dumps
    params = [
        now,
        [d.type for d in drafts],
        messages,
        [d.session_id for d in drafts],
        [d.workflow_id for d in drafts],
        [d.task_id for d in drafts],
        [d.agent_id for d in drafts],
        [dumps(d.participants) for d in drafts],
        [dumps(d.collaboration_data) for d in drafts],
        [dumps(d.business_impact) for d in drafts],
        [d.simulated for d in drafts],
    ]
    return _EVENTS_SQL, params, messages


_EVENT_NAMES = [name for name, _ in EVENT_COLUMNS]
_EVENT_CASTS = [f"%b::{'text' if kind == 'jsonb' else kind}[]" for _, kind in EVENT_COLUMNS]
_EVENT_SELECT = [f"v.{name}::jsonb" if kind == "jsonb" else f"v.{name}" for name, kind in EVENT_COLUMNS]
_EVENTS_SQL = (
    f'INSERT INTO "{CoordinationEvent._meta.db_table}" ({", ".join(_EVENT_NAMES)}, created_at) '
    f"SELECT {', '.join(_EVENT_SELECT)}, %b FROM unnest({', '.join(_EVENT_CASTS)}) WITH ORDINALITY "
    f"AS v({', '.join(_EVENT_NAMES)}, ord) ORDER BY v.ord RETURNING id"
)


def writes_run(writes: list[tuple[str, list]], drafts: list[EventDraft], *, now) -> None:
    """PostgreSQL: run data-modifying statements and insert `drafts` as events, all in ONE statement.

    Each write becomes a data-modifying CTE of the events INSERT, so a tick's
    writes cost one round trip. The writes touch distinct rows (PostgreSQL runs
    every CTE once, on one snapshot). Events are published after commit.
    """
    sql, params, messages = _events_insert(drafts, now=now)
    if writes:
        ctes = ", ".join(f"w{i} AS ({w_sql})" for i, (w_sql, _) in enumerate(writes))
        sql = f"WITH {ctes} {sql}"
        params = [p for _, w_params in writes for p in w_params] + params
    ids = sorted(row[0] for row in _execute_binary(sql, params, fetch=True))
    if not drafts:
        return
    created = now.isoformat()
    payloads = [
        {
            "id": pk,
            "type": d.type,
            "message": message,
            "session": d.session_id,
            "workflow": d.workflow_id,
            "task": d.task_id,
            "agent": d.agent_id,
            "participants": d.participants,
            "context": d.collaboration_data,
            "businessImpact": d.business_impact,
            "simulated": d.simulated,
            "created_at": created,
        }
        for pk, d, message in zip(ids, drafts, messages, strict=True)
    ]
    pending = getattr(_publishing, "payloads", None)
    if pending is not None:
        pending.extend(payloads)  # published with the rest of the transaction's events
    else:
        transaction.on_commit(lambda: events.publish(payloads))


_publishing = threading.local()


@contextmanager
def _one_publish():
    """Collect the events written inside into one publish after commit (one message per group).

    Used inside an atomic block; payloads keep the order they were written in.
    """
    outer = getattr(_publishing, "payloads", None)
    if outer is not None:  # already collecting: the outer block publishes
        yield
        return
    payloads: list[dict] = []
    _publishing.payloads = payloads
    try:
        yield
    finally:
        _publishing.payloads = None
    if payloads:
        transaction.on_commit(lambda: events.publish(payloads))


def _flush(batch: FlowBatch, *, now, writes: list[tuple[str, list]] | None = None) -> None:
    """batch_flush, with the workflows written in one set-based statement first.

    On PostgreSQL `writes` (other UPDATEs of the same transaction), the workflows
    and the events so far are one statement; new tasks and decisions follow.
    """
    workflows = list(batch.workflows.values())
    batch.workflows.clear()
    drafts, batch.events = batch.events, []
    if connection.vendor == "postgresql":
        writes = list(writes or [])
        if workflows:
            writes.append(_bulk_set_sql(Workflow, workflows, ["status", "state", "completed_at"]))
        writes_run(writes, drafts, now=now)
    else:
        assert not writes, "extra writes are PostgreSQL statements"
        bulk_set(Workflow, workflows, ["status", "state", "completed_at"])
        events_write(drafts, now=now)
    batch_flush(batch, now=now, record=events_write)  # new tasks, decisions and their events


# --- Coordinator instances --------------------------------------------------


def coordinator_register(*, concurrency: int, name: str = "") -> CoordinatorInstance:
    import os

    now = timezone.now()
    hostname = socket.gethostname()
    with transaction.atomic():
        instance = CoordinatorInstance.objects.create(
            name=name or f"{hostname}:{os.getpid()}",
            hostname=hostname,
            pid=os.getpid(),
            concurrency=concurrency,
            started_at=now,
            heartbeat_at=now,
        )
        event_record(
            EventDraft(
                type=E.COORDINATOR_STARTED,
                message=f"Coordinator {instance.name} started with {concurrency} workers",
                collaboration_data={"coordinator": instance.pk, "concurrency": concurrency},
            ),
            now=now,
        )
    return instance


def coordinator_heartbeat(*, instance: CoordinatorInstance, processed: int = 0, tick_ms: float = 0.0) -> None:
    now = timezone.now()
    CoordinatorInstance.objects.filter(pk=instance.pk).update(
        heartbeat_at=now,
        tasks_processed=F("tasks_processed") + processed,
        last_tick_ms=tick_ms,
        # A daemon declared dead while it was stalled comes back to life with its next heartbeat.
        status=Case(
            When(status=CoordinatorInstance.Status.DEAD, then=Value(CoordinatorInstance.Status.RUNNING)),
            default=F("status"),
        ),
    )
    # Agents without work are kept alive by whichever daemon runs; working agents are kept alive by
    # the lease renewals of the daemon running their tasks, so a dead daemon's agents go stale.
    # Rows are locked in id order and locked ones skipped (they are being written anyway), so this
    # never deadlocks with a claim or a result being applied.
    with transaction.atomic():
        idle = (
            Agent.objects.filter(session__status=Session.Status.ACTIVE, active_tasks=0)
            .exclude(status__in=[Agent.Status.OFFLINE, Agent.Status.ERROR])
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("id")
            .values("pk")
        )
        Agent.objects.filter(pk__in=idle).update(heartbeat_at=now)


def coordinator_stopping(*, instance: CoordinatorInstance) -> None:
    """Mark the daemon as draining: it claims nothing more and hands back what it cannot finish."""
    CoordinatorInstance.objects.filter(pk=instance.pk).update(
        status=CoordinatorInstance.Status.STOPPING, heartbeat_at=timezone.now()
    )


def coordinators_mark_dead(*, now=None) -> int:
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HIVE["HEARTBEAT_TIMEOUT"])
    return CoordinatorInstance.objects.filter(
        status__in=[CoordinatorInstance.Status.RUNNING, CoordinatorInstance.Status.STOPPING], heartbeat_at__lt=cutoff
    ).update(status=CoordinatorInstance.Status.DEAD)


def coordinator_stop(*, instance: CoordinatorInstance, reason: str = "shutdown") -> None:
    now = timezone.now()
    with transaction.atomic():
        CoordinatorInstance.objects.filter(pk=instance.pk).update(
            status=CoordinatorInstance.Status.STOPPED, stopped_at=now, heartbeat_at=now
        )
        event_record(
            EventDraft(
                type=E.COORDINATOR_STOPPED,
                message=f"Coordinator {instance.name} stopped ({reason})",
                collaboration_data={"coordinator": instance.pk, "reason": reason},
            ),
            now=now,
        )


# --- One tick's writes ------------------------------------------------------------


def tasks_apply_and_claim(
    *, instance: CoordinatorInstance, finished: list[Finished], limit: int, now=None
) -> tuple[dict[str, int], list[Claim]]:
    """task_results_apply, then tasks_claim, in one transaction: one commit and one publish per tick.

    The claim sees the agents the results freed and the tasks they created. Claims
    never wait on a lock (SKIP LOCKED), so holding the results' locks meanwhile adds
    no wait to other daemons beyond the shared commit. If anything fails, nothing
    is written; the caller may retry both separately.
    """
    now = now or timezone.now()
    with transaction.atomic(), _one_publish():
        counts = task_results_apply(instance=instance, finished=finished, now=now)
        claims = tasks_claim(instance=instance, limit=limit, now=now)
    return counts, claims


# --- Claiming -----------------------------------------------------------------


def _success_rate(agent: Agent, step: str) -> float:
    """The agent's record on this step: share of successes, 0.5 when it has none yet."""
    record = agent.success_patterns.get(step, {}) if isinstance(agent.success_patterns, dict) else {}
    done = record.get("ok", 0) + record.get("failed", 0)
    return record.get("ok", 0) / done if done else 0.5


def _files_lock(session_ids: list[int]) -> None:
    """Serialise the file check of concurrent claims per session (PostgreSQL).

    Without it two daemons could each see the other's task as not running yet
    and start two tasks touching one file. Held to the end of the transaction;
    taken in session order so daemons never deadlock. SQLite needs nothing:
    its IMMEDIATE transactions already serialise writers.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for session_id in session_ids:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"hive.files.{session_id}"])


def _files_overlap(a: list, b: list) -> bool:
    return bool(set(a) & set(b))


class _WorkflowRow:
    """What a claim reads of a candidate's workflow (PostgreSQL fast path)."""

    __slots__ = ("pattern", "state", "title")

    def __init__(self, pattern: str, state: dict, title: str):
        self.pattern, self.state, self.title = pattern, state, title


class _TaskRow:
    """A candidate task read as a plain row (PostgreSQL fast path); attribute names follow Task."""

    __slots__ = (
        "pk",
        "session_id",
        "workflow_id",
        "role",
        "step",
        "files",
        "result",
        "title",
        "description",
        "handoff_note",
        "round",
        "attempt",
        "workflow",
        "session_workspace",
        "session_goal",
        "status",
        "agent",
        "pair_agent",
        "simulated",
    )

    def __init__(self, row: tuple):
        (
            self.pk,
            self.session_id,
            self.workflow_id,
            self.role,
            self.step,
            files,
            result,
            self.title,
            self.description,
            self.handoff_note,
            self.round,
            self.attempt,
            pattern,
            state,
            workflow_title,
            self.session_workspace,
            self.session_goal,
        ) = row
        self.files = json.loads(files)
        self.result = json.loads(result)
        self.workflow = _WorkflowRow(pattern, json.loads(state), workflow_title)


class _AgentRow:
    """An agent read as a plain row (PostgreSQL fast path); attribute names follow Agent."""

    __slots__ = (
        "pk",
        "name",
        "role",
        "status",
        "session_id",
        "runtime",
        "_runtime_config",
        "concurrency",
        "active_tasks",
        "_success_patterns",
    )

    def __init__(self, row: tuple):
        (
            self.pk,
            self.name,
            self.role,
            self.status,
            self.session_id,
            self.runtime,
            self._runtime_config,
            self.concurrency,
            self.active_tasks,
            self._success_patterns,
        ) = row

    @property
    def runtime_config(self) -> dict:
        return json.loads(self._runtime_config)

    @property
    def success_patterns(self) -> dict:
        if isinstance(self._success_patterns, str):
            self._success_patterns = json.loads(self._success_patterns)
        return self._success_patterns


_T = Task._meta.db_table
_A = Agent._meta.db_table
_W = Workflow._meta.db_table
_S = Session._meta.db_table
_CAPACITY_SQL = f"""
SELECT a.session_id, a.role, SUM(a.concurrency - a.active_tasks)
FROM "{_A}" a INNER JOIN "{_S}" s ON s.id = a.session_id
WHERE a.status = ANY(%b::text[]) AND a.active_tasks < a.concurrency AND s.status = %b
GROUP BY a.session_id, a.role
"""
_CANDIDATES_SQL = """
WITH picked AS (
    -- The task's own columns only: the sort under the lock carries no workflow or session.
    SELECT t.id, t.session_id, t.workflow_id, t.role, t.step, t.files::text AS files, t.result::text AS result,
           t.title, t.description, t.handoff_note, t.round, t.attempt, t.priority
    FROM "{task}" t
    WHERE t.status = %b AND {where} AND (t.not_before IS NULL OR t.not_before <= %b)
    ORDER BY t.priority DESC, t.id
    LIMIT %b
    FOR UPDATE OF t SKIP LOCKED
)
SELECT t.id, t.session_id, t.workflow_id, t.role, t.step, t.files, t.result, t.title,
       t.description, t.handoff_note, t.round, t.attempt, w.pattern, w.state::text, w.title,
       s.workspace, s.goal
FROM picked t INNER JOIN "{workflow}" w ON w.id = t.workflow_id INNER JOIN "{session}" s ON s.id = t.session_id
ORDER BY t.priority DESC, t.id
"""
_AGENT_COLUMNS = (
    "id, name, role, status, session_id, runtime, runtime_config::text, concurrency, active_tasks, "
    "success_patterns::text"
)


def _pg_candidates(*, limit: int, now) -> list[_TaskRow]:
    """The ORM path's reads as plain rows: capacity, then candidates locked SKIP LOCKED with their workflows.

    Ready tasks of sessions and roles with a free agent, not backing off, best
    first, `wanted` plus some headroom. A single session or role is matched with
    `=`, so the usual claim walks task_claim_idx in order and stops at the limit
    instead of sorting every ready task.
    """
    capacity = _execute_binary(
        _CAPACITY_SQL, [[Agent.Status.IDLE.value, Agent.Status.BUSY.value], Session.Status.ACTIVE.value], fetch=True
    )
    if not capacity:
        return []
    sessions = sorted({s for s, _, _ in capacity})
    roles = sorted({r for _, r, _ in capacity})
    wanted = min(limit, sum(free for _, _, free in capacity))
    where, params = [], []
    for column, values, kind in (("session_id", sessions, "bigint"), ("role", roles, "text")):
        if len(values) == 1:
            where.append(f"t.{column} = %b")
            params.append(values[0])
        else:
            where.append(f"t.{column} = ANY(%b::{kind}[])")
            params.append(values)
    sql = _CANDIDATES_SQL.format(task=_T, workflow=_W, session=_S, where=" AND ".join(where))
    rows = _execute_binary(sql, [Task.Status.READY.value, *params, now, wanted + min(wanted, 16)], fetch=True)
    return [_TaskRow(row) for row in rows]


def _pg_agents(*, session_ids: set[int], roles: set[str] | None) -> list[_AgentRow]:
    """Lock the agents a claim may use (SKIP LOCKED, id order): free ones of `roles`, or any working one."""
    if roles is None:  # navigators may be of any role and busy
        where = "session_id = ANY(%b::bigint[]) AND NOT (status = ANY(%b::text[]))"
        params = [list(session_ids), [Agent.Status.OFFLINE.value, Agent.Status.ERROR.value]]
    else:
        where = (
            "session_id = ANY(%b::bigint[]) AND status = ANY(%b::text[]) AND active_tasks < concurrency "
            "AND role = ANY(%b::text[])"
        )
        params = [list(session_ids), [Agent.Status.IDLE.value, Agent.Status.BUSY.value], list(roles)]
    sql = f'SELECT {_AGENT_COLUMNS} FROM "{_A}" WHERE {where} ORDER BY id FOR UPDATE SKIP LOCKED'
    return [_AgentRow(row) for row in _execute_binary(sql, params, fetch=True)]


def tasks_claim(*, instance: CoordinatorInstance, limit: int, now=None) -> list[Claim]:
    """Lease up to `limit` ready tasks to matching idle agents, in one transaction.

    Ready rows are locked with SKIP LOCKED so several daemons share the queue
    without ever assigning a task twice. On PostgreSQL candidates and agents are
    read as plain rows and every write of the claim is one statement.
    """
    if limit <= 0:
        return []
    now = now or timezone.now()
    lease = timedelta(seconds=settings.HIVE["LEASE_SECONDS"])
    fast = connection.vendor == "postgresql"
    if not fast:
        # Where is there capacity? A plain read; rows are locked below.
        capacity = list(
            Agent.objects.available()
            .filter(session__status=Session.Status.ACTIVE)
            .values_list("session_id", "role")
            .annotate(free=Sum(F("concurrency") - F("active_tasks")))
        )
        if not capacity:
            return []
        sessions = {s for s, _, _ in capacity}
        roles = {r for _, r, _ in capacity}
        wanted = min(limit, sum(free for _, _, free in capacity))
    with transaction.atomic(savepoint=False), _one_publish():
        if fast:
            candidates = _pg_candidates(limit=limit, now=now)
        else:
            # Some headroom past what can run, for tasks no free agent can take (role, files).
            candidates = list(
                Task.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status=Task.Status.READY, session_id__in=sessions, role__in=roles)
                .exclude(not_before__gt=now)
                .select_related("workflow")
                .annotate(session_workspace=F("session__workspace"), session_goal=F("session__goal"))
                .order_by("-priority", "id")[: wanted + min(wanted, 16)]
            )
        if not candidates:
            return []
        session_ids = {t.session_id for t in candidates}
        pairing = any(_is_pair(t) for t in candidates)
        if fast:
            agents = _pg_agents(session_ids=session_ids, roles=None if pairing else {t.role for t in candidates})
        else:
            agents_query = Agent.objects.select_for_update(skip_locked=True).filter(session_id__in=session_ids)
            if pairing:  # navigators may be of any role and busy
                agents_query = agents_query.exclude(status__in=[Agent.Status.OFFLINE, Agent.Status.ERROR])
            else:
                agents_query = agents_query.available().filter(role__in={t.role for t in candidates})
            agents = list(agents_query.order_by("id"))
        pool: dict[tuple[int, str], list] = defaultdict(list)
        for agent in agents:
            pool[(agent.session_id, agent.role)].append(agent)
        busy_files: dict[int, list[tuple[int, list]]] = defaultdict(list)
        if any(t.files for t in candidates):
            _files_lock(sorted({t.session_id for t in candidates if t.files}))
            for task_id, session_id, files in Task.objects.filter(
                status=Task.Status.RUNNING, session_id__in={t.session_id for t in candidates if t.files}
            ).values_list("id", "session_id", "files"):
                if files:
                    busy_files[session_id].append((task_id, files))

        claimed: list[tuple] = []
        held: list[tuple] = []
        rates: dict[tuple[int, str], float] = {}
        for task in candidates:
            if len(claimed) >= limit:
                break
            if task.files:
                blocker = next(
                    (tid for tid, files in busy_files[task.session_id] if _files_overlap(files, task.files)), None
                )
                if blocker is not None:
                    held.append((task, blocker))
                    continue
            agent = _pick_agent(task=task, pool=pool, rates=rates)
            if agent is None:
                continue
            navigator = _pick_navigator(task=task, driver=agent, agents=agents) if _is_pair(task) else None
            agent.active_tasks += 1
            claimed.append((task, agent, navigator))
            if task.files:
                busy_files[task.session_id].append((task.pk, task.files))

        drafts: list[EventDraft] = []
        for task, blocker in held:
            if task.result.get("held_by") != blocker:
                task.result = {**task.result, "held_by": blocker}
                drafts.append(
                    EventDraft(
                        type=E.CONFLICT_DETECTED,
                        message=f"“{task.title}” touches files in use by task #{blocker}; it waits its turn",
                        session_id=task.session_id,
                        workflow_id=task.workflow_id,
                        task_id=task.pk,
                        collaboration_data={"files": task.files, "blocked_by_task": blocker},
                    )
                )
        if held and not fast:
            bulk_set(Task, [t for t, _ in held], ["result"])
        if not claimed:
            if fast:
                writes_run(_held_writes(held), drafts, now=now)
            else:
                events_write(drafts, now=now)
            return []

        claims = []
        for task, agent, navigator in claimed:
            if task.result.get("held_by"):
                drafts.append(
                    EventDraft(
                        type=E.CONFLICT_RESOLVED,
                        message=f"“{task.title}” runs now that task #{task.result['held_by']} released its files",
                        session_id=task.session_id,
                        workflow_id=task.workflow_id,
                        task_id=task.pk,
                        collaboration_data={"files": task.files, "serialised_after": task.result["held_by"]},
                    )
                )
                task.result = {}
            task.status = Task.Status.RUNNING
            task.agent = agent
            task.pair_agent = navigator
            task.attempt += 1
            task.simulated = agent.runtime == Agent.Runtime.SCRIPTED
            workflow = task.workflow
            agent_part = participant(agent)
            navigator_part = participant(navigator)
            both = [agent_part, navigator_part] if navigator is not None and navigator.pk != agent.pk else [agent_part]
            drafts.append(
                EventDraft(
                    type=E.TASK_ASSIGNED,
                    message=f"{agent.name} took “{task.title}”"
                    + (f" (attempt {task.attempt})" if task.attempt > 1 else ""),
                    session_id=task.session_id,
                    workflow_id=task.workflow_id,
                    task_id=task.pk,
                    agent_id=agent.pk,
                    participants=both,
                    collaboration_data={
                        "pattern": workflow.pattern,
                        "step": task.step,
                        "round": task.round,
                        "attempt": task.attempt,
                        "navigator": navigator_part,
                    },
                    simulated=task.simulated,
                )
            )
            if navigator is not None:
                drafts.append(
                    EventDraft(
                        type=E.PAIR_PROGRAMMING,
                        message=f"{agent.name} drives, {navigator.name} navigates "
                        f"on “{workflow.title}” (round {task.round})",
                        session_id=task.session_id,
                        workflow_id=task.workflow_id,
                        task_id=task.pk,
                        agent_id=agent.pk,
                        participants=participants(agent, navigator),
                        collaboration_data={
                            "driver": participant(agent),
                            "navigator": participant(navigator),
                            "round": task.round,
                            "phase": "started",
                        },
                        simulated=task.simulated,
                    )
                )
                workflow.state = {**workflow.state, "pair": [agent.pk, navigator.pk]}
            claims.append(
                Claim(
                    task_id=task.pk,
                    attempt=task.attempt,
                    agent_id=agent.pk,
                    runtime=agent.runtime,
                    runtime_config=agent.runtime_config,
                    context=TaskContext(
                        task_id=task.pk,
                        attempt=task.attempt,
                        title=task.title,
                        description=task.description,
                        role=task.role,
                        step=task.step,
                        pattern=workflow.pattern,
                        workspace=task.session_workspace,
                        files=tuple(task.files),
                        handoff_note=task.handoff_note,
                        round=task.round,
                        pair_partner=navigator.name if navigator else "",
                        session_goal=task.session_goal,
                        workflow_title=workflow.title,
                        agent_name=agent.name,
                    ),
                )
            )
        touched = {a.pk: a for _, a, _ in claimed}
        for agent in touched.values():
            agent.status = Agent.Status.BUSY if agent.status != Agent.Status.PAUSED else agent.status
        if fast:
            writes = _held_writes(held) + _claim_writes(claimed, touched, instance=instance, now=now, lease=lease)
            writes_run(writes, drafts, now=now)
            return claims
        for task, _, _ in claimed:
            task.lease_owner = instance
            task.lease_expires_at = now + lease
            task.started_at = now
        bulk_set(
            Task,
            [t for t, _, _ in claimed],
            [
                "status",
                "agent",
                "pair_agent",
                "attempt",
                "lease_owner",
                "lease_expires_at",
                "started_at",
                "simulated",
                "result",
            ],
        )
        for agent in touched.values():
            agent.heartbeat_at = now
        bulk_set(Agent, list(touched.values()), ["active_tasks", "status", "heartbeat_at"])
        TaskAttempt.objects.bulk_create(
            [
                TaskAttempt(task=task, number=task.attempt, agent=agent, coordinator=instance, started_at=now)
                for task, agent, _ in claimed
            ]
        )
        for task, _, navigator in claimed:
            if navigator is not None:
                Workflow.objects.filter(pk=task.workflow_id).update(state=task.workflow.state)
        events_write(drafts, now=now)
    return claims


def _held_writes(held: list[tuple]) -> list[tuple[str, list]]:
    """The write recording which task holds the files of each waiting task (PostgreSQL)."""
    if not held:
        return []
    sql = (
        f'UPDATE "{_T}" AS t SET result = v.result::jsonb FROM unnest(%b::bigint[], %b::text[]) AS v(id, result) '
        "WHERE t.id = v.id"
    )
    return [(sql, [[t.pk for t, _ in held], [json.dumps(t.result) for t, _ in held]])]


def _claim_writes(claimed: list[tuple], touched: dict, *, instance, now, lease) -> list[tuple[str, list]]:
    """A claim's writes on PostgreSQL: tasks leased, agents' load, attempts opened, pair rotation."""
    tasks_sql = (
        f'UPDATE "{_T}" AS t SET status = %b, agent_id = v.agent_id, pair_agent_id = v.pair_agent_id, '
        "attempt = v.attempt, lease_owner_id = %b, lease_expires_at = %b, started_at = %b, simulated = v.simulated, "
        "result = v.result::jsonb "
        "FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::integer[], %b::boolean[], %b::text[]) "
        "AS v(id, agent_id, pair_agent_id, attempt, simulated, result) WHERE t.id = v.id"
    )
    tasks_params = [
        Task.Status.RUNNING.value,
        instance.pk,
        now + lease,
        now,
        [t.pk for t, _, _ in claimed],
        [a.pk for _, a, _ in claimed],
        [n.pk if n is not None else None for _, _, n in claimed],
        [t.attempt for t, _, _ in claimed],
        [t.simulated for t, _, _ in claimed],
        [json.dumps(t.result) for t, _, _ in claimed],
    ]
    agents_sql = (
        f'UPDATE "{_A}" AS a SET active_tasks = v.active_tasks, status = v.status, heartbeat_at = %b '
        "FROM unnest(%b::bigint[], %b::integer[], %b::text[]) AS v(id, active_tasks, status) WHERE a.id = v.id"
    )
    agents_params = [
        now,
        list(touched),
        [a.active_tasks for a in touched.values()],
        [str(a.status) for a in touched.values()],
    ]
    attempts_sql = (
        f'INSERT INTO "{TaskAttempt._meta.db_table}" '
        "(task_id, number, agent_id, coordinator_id, status, outcome, summary, started_at, finished_at) "
        "SELECT v.task_id, v.number, v.agent_id, %b, %b, '', '', %b, NULL "
        "FROM unnest(%b::bigint[], %b::integer[], %b::bigint[]) AS v(task_id, number, agent_id)"
    )
    attempts_params = [
        instance.pk,
        TaskAttempt.Status.RUNNING.value,
        now,
        [t.pk for t, _, _ in claimed],
        [t.attempt for t, _, _ in claimed],
        [a.pk for _, a, _ in claimed],
    ]
    writes = [(tasks_sql, tasks_params), (agents_sql, agents_params), (attempts_sql, attempts_params)]
    pairs = {t.workflow_id: t.workflow.state for t, _, n in claimed if n is not None}
    if pairs:
        writes.append(
            (
                f'UPDATE "{_W}" AS w SET state = v.state::jsonb FROM unnest(%b::bigint[], %b::text[]) AS v(id, state) '
                "WHERE w.id = v.id",
                [list(pairs), [json.dumps(state) for state in pairs.values()]],
            )
        )
    return writes


def _is_pair(task: Task) -> bool:
    pattern = patterns.PATTERNS.get(task.workflow.pattern)
    return bool(pattern) and any(s.key == task.step and s.pair for s in pattern.steps)


def _pick_agent(*, task: Task, pool: dict, rates: dict) -> Agent | None:
    """The best free agent for `task`; `rates` caches success rates for the whole claim."""
    candidates = [
        a for a in pool.get((task.session_id, task.role), ()) if a.status in (Agent.Status.IDLE, Agent.Status.BUSY)
    ]
    candidates = [a for a in candidates if a.active_tasks < a.concurrency]
    if not candidates:
        return None
    state = task.workflow.state
    pattern = patterns.PATTERNS.get(task.workflow.pattern)
    step = next((s for s in pattern.steps if s.key == task.step), None) if pattern else None
    if step is not None and step.exclude_previous_agent and len(candidates) > 1:
        candidates = [a for a in candidates if a.pk != state.get("last_agent_id")] or candidates
    if step is not None and step.pair and state.get("pair"):
        # Swap roles between rounds: last round's navigator drives now.
        previous_navigator = state["pair"][1]
        preferred = [a for a in candidates if a.pk == previous_navigator]
        if preferred:
            return preferred[0]
    step_key = task.step

    def score(agent: Agent) -> tuple:
        # Lower is better: least loaded, then best record on this step, then oldest.
        rate = rates.get((agent.pk, step_key))
        if rate is None:
            rate = rates[(agent.pk, step_key)] = _success_rate(agent, step_key)
        return (agent.active_tasks / agent.concurrency, -rate, agent.pk)

    return min(candidates, key=score)


def _pick_navigator(*, task: Task, driver: Agent, agents: list[Agent]) -> Agent | None:
    same_session = [
        a for a in agents if a.session_id == task.session_id and a.pk != driver.pk and a.status != Agent.Status.PAUSED
    ]
    state_pair = task.workflow.state.get("pair") or []
    for agent in same_session:
        if state_pair and agent.pk == state_pair[0]:
            return agent  # last round's driver navigates now
    for role in (driver.role, Agent.Role.REVIEWER, Agent.Role.ARCHITECT):
        for agent in same_session:
            if agent.role == role:
                return agent
    return None


# --- Leases ---------------------------------------------------------------------


def tasks_lease_renew(*, instance: CoordinatorInstance, task_ids: list[int], now=None) -> dict[int, int]:
    """Extend the leases this daemon still holds; returns {task id: attempt} of what it still holds.

    A task missing from the answer was reclaimed (or cancelled) meanwhile: its
    runtime should stop, and its result will be rejected by the fencing check.
    Rows are locked in id order so renewals never deadlock with other writers.
    """
    if not task_ids:
        return {}
    now = now or timezone.now()
    with transaction.atomic():
        held = list(
            Task.objects.select_for_update(of=("self",))
            .filter(pk__in=task_ids, lease_owner=instance, status=Task.Status.RUNNING)
            .order_by("id")
            .values_list("pk", "agent_id", "attempt")
        )
        if not held:
            return {}
        Task.objects.filter(pk__in=[pk for pk, _, _ in held]).update(
            lease_expires_at=now + timedelta(seconds=settings.HIVE["LEASE_SECONDS"])
        )
        agent_ids = sorted({agent_id for _, agent_id, _ in held if agent_id})
        locked_agents = Agent.objects.filter(pk__in=agent_ids).select_for_update().order_by("id").values("pk")
        Agent.objects.filter(pk__in=locked_agents).update(heartbeat_at=now)
    return {pk: attempt for pk, _, attempt in held}


# --- Applying results -------------------------------------------------------------


def task_results_apply(*, instance: CoordinatorInstance, finished: list[Finished], now=None) -> dict[str, int]:
    """Apply runtime results in one transaction; a result whose attempt is no longer current is rejected.

    The attempt number is the fencing token: a result counts only while its task
    is still running that very attempt under this daemon's lease, so a late
    result of a reclaimed attempt is recorded as rejected and never applied twice.
    """
    counts = {"completed": 0, "retried": 0, "escalated": 0, "rejected": 0}
    if not finished:
        return counts
    now = now or timezone.now()
    with transaction.atomic(savepoint=False), _one_publish():
        fast = connection.vendor == "postgresql"
        if fast:
            tasks = _pg_tasks_for_results(sorted({f.task_id for f in finished}))
        else:
            tasks = {
                t.pk: t
                for t in Task.objects.select_for_update(of=("self",))
                .filter(pk__in={f.task_id for f in finished})
                .select_related("workflow")
                .order_by("id")
            }
        accepted: list[tuple[Task, Finished]] = []
        rejected: list[tuple[Task, Finished]] = []
        accepted_ids: set[int] = set()
        for item in finished:
            task = tasks.get(item.task_id)
            if task is None:
                continue  # deleted meanwhile: nothing to apply
            if (
                task.status == Task.Status.RUNNING
                and task.attempt == item.attempt
                and task.lease_owner_id == instance.pk
                and task.pk not in accepted_ids  # two results of one attempt: the first wins
            ):
                accepted.append((task, item))
                accepted_ids.add(task.pk)
            else:
                rejected.append((task, item))
        agent_ids = {t.agent_id for t, _ in accepted if t.agent_id} | {
            t.pair_agent_id for t, _ in accepted if t.pair_agent_id
        }
        if fast:
            agents = _pg_models(Agent, "id = ANY(%b::bigint[]) ORDER BY id FOR UPDATE", [sorted(agent_ids)])
        else:
            agents = {a.pk: a for a in Agent.objects.select_for_update().filter(pk__in=agent_ids).order_by("id")}
        batch = FlowBatch()
        for task, item in rejected:
            counts["rejected"] += 1
            batch.events.append(
                EventDraft(
                    type=E.TASK_RESULT_REJECTED,
                    message=f"Late result of attempt {item.attempt} for “{task.title}” ignored "
                    f"(current attempt {task.attempt}, {task.status})",
                    session_id=task.session_id,
                    workflow_id=task.workflow_id,
                    task_id=task.pk,
                    collaboration_data={
                        "attempt": item.attempt,
                        "current_attempt": task.attempt,
                        "status": task.status,
                        "outcome": str(item.result.outcome),
                    },
                )
            )
        workflows: dict[int, Workflow] = {}
        attempts_close: list[tuple[int, int, str, str]] = []
        outcomes: dict[int, str] = {}
        for task, item in accepted:
            workflow = workflows.setdefault(task.workflow_id, task.workflow)
            task.workflow = workflow
            agent = agents.get(task.agent_id)
            if task.pair_agent_id:
                task.pair_agent = agents.get(task.pair_agent_id)
            result = item.result
            _record_result(task=task, result=result, now=now)
            if agent is not None:
                agent.active_tasks = max(0, agent.active_tasks - 1)
            kind = _finish_one(task=task, workflow=workflow, agent=agent, result=result, now=now, batch=batch)
            counts[kind] += 1
            ok = kind == "completed" and result.outcome != Outcome.FAILURE
            attempts_close.append((task.pk, task.attempt, "succeeded" if ok else "failed", result.summary[:1000]))
            outcomes[task.pk] = task.outcome or str(result.outcome)
            if agent is not None:
                _agent_record(agent=agent, step=task.step, ok=kind == "completed")
            if task.status != Task.Status.RUNNING:
                task.lease_owner = None
                task.lease_expires_at = None
        task_fields = [
            "status",
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
        for agent in agents.values():
            if agent.active_tasks == 0 and agent.status == Agent.Status.BUSY:
                agent.status = Agent.Status.IDLE
            agent.heartbeat_at = now
        agent_fields = ["active_tasks", "status", "heartbeat_at", "tasks_completed", "tasks_failed", "success_patterns"]
        if connection.vendor == "postgresql":
            # Attempts, tasks, agents, workflows and events: one statement.
            writes = []
            if attempts_close:
                writes.append(_attempts_close_sql(attempts_close, outcomes=outcomes, now=now))
            if accepted:
                writes.append(_bulk_set_sql(Task, [t for t, _ in accepted], task_fields))
            if agents:
                writes.append(_bulk_set_sql(Agent, list(agents.values()), agent_fields))
            _flush(batch, now=now, writes=writes)
            return counts
        _attempts_close(attempts_close, outcomes=outcomes, now=now)
        bulk_set(Task, [t for t, _ in accepted], task_fields)
        bulk_set(Agent, list(agents.values()), agent_fields)
        _flush(batch, now=now)
    return counts


def _columns(model, prefix: str = "") -> str:
    return ", ".join(prefix + '"' + f.column + '"' for f in model._meta.concrete_fields)


def _pg_models(model, where: str, params: list) -> dict:
    """Model instances of `model` from one binary-result query (PostgreSQL): {pk: instance}.

    The same instances the ORM builds, without its compile step and text parsing
    (every field of these models is one psycopg decodes to what Django returns).
    """
    names = [f.attname for f in model._meta.concrete_fields]
    sql = f'SELECT {_columns(model)} FROM "{model._meta.db_table}" WHERE {where}'
    alias = connection.alias
    objs = [model.from_db(alias, names, row) for row in _execute_binary(sql, params, fetch=True, binary=True)]
    return {obj.pk: obj for obj in objs}


def _pg_tasks_for_results(task_ids: list[int]) -> dict[int, Task]:
    """The tasks of `task_ids`, locked in id order, each with its workflow (PostgreSQL, binary results)."""
    task_fields = Task._meta.concrete_fields
    workflow_fields = Workflow._meta.concrete_fields
    sql = (
        f"SELECT {_columns(Task, 't.')}, {_columns(Workflow, 'w.')} "
        f'FROM "{_T}" t INNER JOIN "{_W}" w ON w.id = t.workflow_id '
        "WHERE t.id = ANY(%b::bigint[]) ORDER BY t.id FOR UPDATE OF t"
    )
    task_names = [f.attname for f in task_fields]
    workflow_names = [f.attname for f in workflow_fields]
    n = len(task_names)
    alias = connection.alias
    tasks = {}
    for row in _execute_binary(sql, [task_ids], fetch=True, binary=True):
        task = Task.from_db(alias, task_names, row[:n])
        task.workflow = Workflow.from_db(alias, workflow_names, row[n:])
        tasks[task.pk] = task
    return tasks


def _record_result(*, task: Task, result: RuntimeResult, now) -> None:
    task.result = {
        "summary": result.summary[:2000],
        "output": result.output[-OUTPUT_LIMIT:],
        "artifacts": list(result.artifacts)[:100],
        "outcome": str(result.outcome),
        "exit_code": result.exit_code,
        "duration_s": round(result.duration_s, 3),
        "simulated": result.simulated,
    }
    task.error = result.error[:4000]
    task.tokens_in += result.tokens_in
    task.tokens_out += result.tokens_out
    task.cost_usd = Decimal(task.cost_usd) + Decimal(result.cost_usd)
    task.simulated = result.simulated
    task.finished_at = now


def _finish_one(
    *, task: Task, workflow: Workflow, agent: Agent | None, result: RuntimeResult, now, batch: FlowBatch
) -> str:
    base = {
        "session_id": task.session_id,
        "workflow_id": workflow.pk,
        "task_id": task.pk,
        "agent_id": agent.pk if agent else None,
        "simulated": result.simulated,
    }
    impact = {
        "human_estimate_hours": str(task.human_estimate_hours),
        "duration_s": round(result.duration_s, 3),
        "tokens": result.tokens_in + result.tokens_out,
        "cost_usd": str(result.cost_usd),
    }
    if workflow.status not in Workflow.OPEN_STATUSES:
        # The workflow was cancelled while this ran: record the result, move nothing.
        task.status = Task.Status.CANCELLED
        return "completed"
    kind = "retry"
    mark = len(batch.events)
    if not result.error:
        kind = move_apply(
            task=task,
            workflow=workflow,
            outcome=str(result.outcome),
            agent=agent,
            summary=result.summary,
            output=result.output,
            now=now,
            batch=batch,
        )
    if kind == "retry":
        return _retry_or_escalate(
            task=task, workflow=workflow, agent=agent, result=result, now=now, batch=batch, base=base
        )
    batch.events.insert(
        mark,
        EventDraft(
            type=E.TASK_COMPLETED,
            message=f"{agent.name if agent else 'agent'} finished “{task.title}”: {result.summary[:200]}",
            participants=participants(agent, task.pair_agent if task.pair_agent_id else None),
            collaboration_data={"step": task.step, "round": task.round, "outcome": str(result.outcome)},
            business_impact=impact,
            **base,
        ),
    )
    return "escalated" if kind == "escalate" else "completed"


def _retry_or_escalate(*, task, workflow, agent, result, now, batch: FlowBatch, base: dict) -> str:
    reason = result.error or f"{task.step} cannot handle outcome {result.outcome}"
    batch.events.append(
        EventDraft(
            type=E.TASK_FAILED,
            message=f"“{task.title}” failed on attempt {task.attempt}: {reason[:200]}",
            participants=participants(agent),
            collaboration_data={"step": task.step, "attempt": task.attempt, "error": reason[:1000]},
            **base,
        )
    )
    task.outcome = str(result.outcome)
    if task.attempt < task.max_attempts:
        delay = settings.HIVE["RETRY_BACKOFF"] * (2 ** (task.attempt - 1))
        task.status = Task.Status.READY
        task.ready_at = now
        task.not_before = now + timedelta(seconds=delay)
        batch.events.append(
            EventDraft(
                type=E.TASK_RETRY_SCHEDULED,
                message=f"“{task.title}” will be retried in {delay:.0f} s "
                f"(attempt {task.attempt + 1} of {task.max_attempts})",
                collaboration_data={"attempt": task.attempt + 1, "delay_s": delay},
                **base,
            )
        )
        return "retried"
    task.status = Task.Status.BLOCKED
    decision_draft(
        task=task,
        workflow=workflow,
        kind="retries_exhausted",
        now=now,
        batch=batch,
        facts={"attempts": task.attempt, "error": reason[:120]},
    )
    return "escalated"


def _agent_record(*, agent: Agent, step: str, ok: bool) -> None:
    patterns_ = dict(agent.success_patterns or {})
    record = dict(patterns_.get(step, {"ok": 0, "failed": 0}))
    record["ok" if ok else "failed"] = record.get("ok" if ok else "failed", 0) + 1
    patterns_[step] = record
    agent.success_patterns = patterns_
    if ok:
        agent.tasks_completed += 1
    else:
        agent.tasks_failed += 1


def _attempts_close_sql(rows: list[tuple[int, int, str, str]], *, outcomes: dict[int, str], now) -> tuple[str, list]:
    """PostgreSQL: close attempts matched on (task, number) straight from arrays, no rows fetched."""
    table = TaskAttempt._meta.db_table
    sql = (
        f'UPDATE "{table}" AS a SET status = v.status, summary = v.summary, outcome = v.outcome, '
        "finished_at = %b FROM unnest(%b::bigint[], %b::integer[], %b::text[], %b::text[], %b::text[]) "
        "AS v(task_id, number, status, summary, outcome) "
        "WHERE a.task_id = v.task_id AND a.number = v.number AND a.status = %b"
    )
    params = [
        now,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [outcomes.get(r[0], "") for r in rows],
        TaskAttempt.Status.RUNNING.value,
    ]
    return sql, params


def _attempts_close(rows: list[tuple[int, int, str, str]], *, outcomes: dict[int, str], now) -> None:
    """Close the running attempt of each (task, number) with its status, summary and outcome."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        _execute_binary(*_attempts_close_sql(rows, outcomes=outcomes, now=now))
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
    bulk_set(TaskAttempt, attempts, ["status", "summary", "outcome", "finished_at"])


# --- Reclaiming and handing back ---------------------------------------------------


def tasks_reclaim_expired(*, now=None, limit: int = 500) -> int:
    """Take back tasks whose lease ran out or whose daemon is known dead or stopped, and hand them on."""
    now = now or timezone.now()
    gone = [CoordinatorInstance.Status.DEAD, CoordinatorInstance.Status.STOPPED]
    with transaction.atomic():
        tasks = list(
            Task.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Task.Status.RUNNING)
            .filter(Q(lease_expires_at__lt=now) | Q(lease_owner__isnull=True) | Q(lease_owner__status__in=gone))
            .select_related("workflow", "agent")
            .order_by("id")[:limit]
        )
        if not tasks:
            return 0
        _release(
            tasks=tasks, now=now, attempt_status=TaskAttempt.Status.RECLAIMED, reason="lease expired", offline=True
        )
    return len(tasks)


def agents_reclaim_dead(*, now=None, limit: int = 100) -> int:
    """Repair agents whose heartbeat stopped while they counted as busy.

    Their running tasks are reclaimed (whatever their lease says) and their load
    counter is recomputed from the tasks really running, so a counter can never
    stay wrong after a crash. Returns the number of agents repaired.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HIVE["HEARTBEAT_TIMEOUT"])
    stale_ids = list(Agent.objects.stale(before=cutoff).order_by("id").values_list("pk", flat=True)[:limit])
    if not stale_ids:
        return 0
    with transaction.atomic():
        # Lock order: tasks before agents, like every other writer.
        tasks = list(
            Task.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Task.Status.RUNNING, agent_id__in=stale_ids)
            .select_related("workflow", "agent")
            .order_by("id")
        )
        if tasks:
            _release(
                tasks=tasks,
                now=now,
                attempt_status=TaskAttempt.Status.RECLAIMED,
                reason="agent heartbeat lost",
                offline=True,
            )
        agents = list(
            Agent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=stale_ids, status=Agent.Status.BUSY, heartbeat_at__lt=cutoff)
            .order_by("id")
        )
        running = dict(
            Task.objects.filter(status=Task.Status.RUNNING, agent__in=agents)
            .values_list("agent_id")
            .annotate(n=Count("pk"))
            .values_list("agent_id", "n")
        )
        for agent in agents:
            agent.active_tasks = min(running.get(agent.pk, 0), agent.concurrency)
            agent.status = Agent.Status.BUSY if agent.active_tasks else Agent.Status.IDLE
            agent.heartbeat_at = now
        bulk_set(Agent, agents, ["active_tasks", "status", "heartbeat_at"])
    return len(agents)


def tasks_hand_back(*, instance: CoordinatorInstance, task_ids: list[int], reason: str) -> int:
    """Return this daemon's in-flight tasks to the queue at once (graceful shutdown)."""
    if not task_ids:
        return 0
    now = timezone.now()
    with transaction.atomic():
        tasks = list(
            Task.objects.select_for_update(of=("self",))
            .filter(pk__in=task_ids, lease_owner=instance, status=Task.Status.RUNNING)
            .select_related("workflow", "agent")
            .order_by("id")
        )
        _release(tasks=tasks, now=now, attempt_status=TaskAttempt.Status.HANDED_BACK, reason=reason, offline=False)
    return len(tasks)


def _release(*, tasks: list[Task], now, attempt_status: str, reason: str, offline: bool) -> None:
    agent_ids = sorted({t.agent_id for t in tasks if t.agent_id})
    agents = {a.pk: a for a in Agent.objects.select_for_update().filter(pk__in=agent_ids).order_by("id")}
    drafts: list[EventDraft] = []
    batch = FlowBatch()
    for task in tasks:
        agent = agents.get(task.agent_id)
        if agent is not None:
            agent.active_tasks = max(0, agent.active_tasks - 1)
        base = {"session_id": task.session_id, "workflow_id": task.workflow_id, "task_id": task.pk}
        who = agent.name if agent else "its agent"
        note = (
            f"{who} stopped on “{task.title}” ({reason}, attempt {task.attempt}); "
            "picking up from the workspace as left."
        )
        task.handoff_note = (note + ("\n" + task.handoff_note if task.handoff_note else ""))[:4000]
        task.lease_owner = None
        task.lease_expires_at = None
        drafts.append(
            EventDraft(
                type=E.TASK_RECLAIMED if offline else E.TASK_HANDOFF,
                message=note,
                agent_id=agent.pk if agent else None,
                participants=participants(agent),
                collaboration_data={
                    "reason": reason,
                    "attempt": task.attempt,
                    "from": participant(agent),
                    "to_role": task.role,
                },
                **base,
            )
        )
        if offline and task.attempt >= task.max_attempts:
            task.status = Task.Status.BLOCKED
            decision_draft(
                task=task,
                workflow=task.workflow,
                kind="retries_exhausted",
                now=now,
                batch=batch,
                facts={"attempts": task.attempt, "error": reason},
            )
        else:
            task.status = Task.Status.READY
            task.ready_at = now
    for agent in agents.values():
        if offline:
            drafts.append(
                EventDraft(
                    type=E.AGENT_OFFLINE,
                    message=f"{agent.name} lost its work ({reason}); back in the pool",
                    session_id=agent.session_id,
                    agent_id=agent.pk,
                    participants=participants(agent),
                    collaboration_data={"reason": reason},
                )
            )
        if agent.active_tasks == 0 and agent.status == Agent.Status.BUSY:
            agent.status = Agent.Status.IDLE
    bulk_set(Task, tasks, ["status", "lease_owner", "lease_expires_at", "handoff_note", "ready_at"])
    bulk_set(Agent, list(agents.values()), ["active_tasks", "status"])
    TaskAttempt.objects.filter(task__in=tasks, status=TaskAttempt.Status.RUNNING).update(
        status=attempt_status, finished_at=now, summary=reason
    )
    batch.events[:0] = drafts
    _flush(batch, now=now)
