"""PostgreSQL bulk SQL of the dispatcher: reads as plain rows, writes as one statement per tick.

Only PgStore (store.py) calls this module. Every statement here has an ORM
counterpart in OrmStore; tests/coordination/test_dispatch_store.py runs both on
the same fixture and compares rows and events.
"""

from __future__ import annotations

import json

import psycopg
from django.db import connection

from agents.models import Agent

from ... import events
from ...events import EventDraft
from ...models import CoordinationEvent, Session, Task, TaskAttempt, Workflow

_T = Task._meta.db_table
_A = Agent._meta.db_table
_W = Workflow._meta.db_table
_S = Session._meta.db_table

Write = tuple[str, list]


def execute(sql: str, params: list, *, fetch: bool = False, binary: bool = False) -> list[tuple]:
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


def bulk_set(model, objs: list, fields: list[str]) -> Write:
    """Write `fields` of many rows: one UPDATE … FROM unnest(arrays), one parameter per column.

    Django's bulk_update builds a CASE WHEN per row and field, which costs more
    Python than the database work.
    """
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


# --- Events -------------------------------------------------------------------------

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
    ("actor", "varchar"),
    ("actor_token", "varchar"),
)
_EVENT_NAMES = [name for name, _ in EVENT_COLUMNS]
_EVENT_CASTS = [f"%b::{'text' if kind == 'jsonb' else kind}[]" for _, kind in EVENT_COLUMNS]
_EVENT_SELECT = [f"v.{name}::jsonb" if kind == "jsonb" else f"v.{name}" for name, kind in EVENT_COLUMNS]
_EVENTS_SQL = (
    f'INSERT INTO "{CoordinationEvent._meta.db_table}" ({", ".join(_EVENT_NAMES)}, created_at) '
    f"SELECT {', '.join(_EVENT_SELECT)}, %b FROM unnest({', '.join(_EVENT_CASTS)}) WITH ORDINALITY "
    f"AS v({', '.join(_EVENT_NAMES)}, ord) ORDER BY v.ord RETURNING id"
)


def _events_params(drafts: list[EventDraft], *, now) -> list:
    dumps = json.dumps
    return [
        now,
        [d.type for d in drafts],
        [d.message[: events.MESSAGE_LIMIT] for d in drafts],
        [d.session_id for d in drafts],
        [d.workflow_id for d in drafts],
        [d.task_id for d in drafts],
        [d.agent_id for d in drafts],
        [dumps(d.participants) for d in drafts],
        [dumps(d.collaboration_data) for d in drafts],
        [dumps(d.business_impact) for d in drafts],
        [d.simulated for d in drafts],
        [d.actor for d in drafts],
        [d.actor_token for d in drafts],
    ]


def writes_run(writes: list[Write], drafts: list[EventDraft], *, now) -> None:
    """Run data-modifying statements and insert `drafts` as events, all in ONE statement.

    Each write becomes a data-modifying CTE of the events INSERT, so a tick's
    writes cost one round trip. The writes touch distinct rows (PostgreSQL runs
    every CTE once, on one snapshot). Events are published after commit, with
    the payloads events.draft_payload builds (the shape event_payload gives the row).
    """
    sql, params = _EVENTS_SQL, _events_params(drafts, now=now)
    if writes:
        ctes = ", ".join(f"w{i} AS ({w_sql})" for i, (w_sql, _) in enumerate(writes))
        sql = f"WITH {ctes} {sql}"
        params = [p for _, w_params in writes for p in w_params] + params
    ids = sorted(row[0] for row in execute(sql, params, fetch=True))
    if drafts:
        events.publish_on_commit([events.draft_payload(d, pk=pk, now=now) for pk, d in zip(ids, drafts, strict=True)])


# --- Claims ---------------------------------------------------------------------------


class WorkflowRow:
    """What a claim reads of a candidate's workflow; attribute names follow Workflow."""

    __slots__ = ("pattern", "state", "title")

    def __init__(self, pattern: str, state: dict, title: str):
        self.pattern, self.state, self.title = pattern, state, title


class TaskRow:
    """A candidate task read as a plain row; attribute names follow Task."""

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
        self.workflow = WorkflowRow(pattern, json.loads(state), workflow_title)


class AgentRow:
    """An agent read as a plain row; attribute names follow Agent."""

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


def capacity() -> list[tuple[int, str, int]]:
    """(session, role, free slots) of active sessions' free agents."""
    return execute(
        _CAPACITY_SQL, [[Agent.Status.IDLE.value, Agent.Status.BUSY.value], Session.Status.ACTIVE.value], fetch=True
    )


def candidates(*, sessions: list[int], roles: list[str], count: int, now) -> list[TaskRow]:
    """Up to `count` ready tasks of `sessions` and `roles`, best first, locked SKIP LOCKED, with their workflows.

    A single session or role is matched with `=`, so the usual claim walks
    task_claim_idx in order and stops at the limit instead of sorting every ready task.
    """
    where, params = [], []
    for column, values, kind in (("session_id", sessions, "bigint"), ("role", roles, "text")):
        if len(values) == 1:
            where.append(f"t.{column} = %b")
            params.append(values[0])
        else:
            where.append(f"t.{column} = ANY(%b::{kind}[])")
            params.append(values)
    sql = _CANDIDATES_SQL.format(task=_T, workflow=_W, session=_S, where=" AND ".join(where))
    rows = execute(sql, [Task.Status.READY.value, *params, now, count], fetch=True)
    return [TaskRow(row) for row in rows]


def claim_agents(*, session_ids: set[int], roles: set[str] | None) -> list[AgentRow]:
    """Lock the agents a claim may use (SKIP LOCKED, id order): free ones of `roles`, or any working one."""
    if roles is None:  # navigators may be of any role and busy
        where = "session_id = ANY(%b::bigint[]) AND NOT (status = ANY(%b::text[]))"
        params = [sorted(session_ids), [Agent.Status.OFFLINE.value, Agent.Status.ERROR.value]]
    else:
        where = (
            "session_id = ANY(%b::bigint[]) AND status = ANY(%b::text[]) AND active_tasks < concurrency "
            "AND role = ANY(%b::text[])"
        )
        params = [sorted(session_ids), [Agent.Status.IDLE.value, Agent.Status.BUSY.value], sorted(roles)]
    sql = f'SELECT {_AGENT_COLUMNS} FROM "{_A}" WHERE {where} ORDER BY id FOR UPDATE SKIP LOCKED'
    return [AgentRow(row) for row in execute(sql, params, fetch=True)]


def held_writes(held: list[tuple]) -> list[Write]:
    """The write recording which task holds the files of each waiting task."""
    if not held:
        return []
    sql = (
        f'UPDATE "{_T}" AS t SET result = v.result::jsonb FROM unnest(%b::bigint[], %b::text[]) AS v(id, result) '
        "WHERE t.id = v.id"
    )
    return [(sql, [[t.pk for t, _ in held], [json.dumps(t.result) for t, _ in held]])]


def claim_writes(claimed: list[tuple], touched: dict, *, instance, now, lease) -> list[Write]:
    """A claim's writes: tasks leased, agents' load, attempts opened, pair rotation."""
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


# --- Results ----------------------------------------------------------------------------


def _columns(model, prefix: str = "") -> str:
    return ", ".join(prefix + '"' + f.column + '"' for f in model._meta.concrete_fields)


def models_locked(model, ids: list[int]) -> dict:
    """Instances of `model` with these ids, locked in id order, from one binary-result query: {pk: instance}.

    The same instances the ORM builds, without its compile step and text parsing
    (every field of these models is one psycopg decodes to what Django returns).
    """
    names = [f.attname for f in model._meta.concrete_fields]
    sql = f'SELECT {_columns(model)} FROM "{model._meta.db_table}" WHERE id = ANY(%b::bigint[]) ORDER BY id FOR UPDATE'
    alias = connection.alias
    objs = [model.from_db(alias, names, row) for row in execute(sql, [ids], fetch=True, binary=True)]
    return {obj.pk: obj for obj in objs}


def tasks_locked_with_workflows(task_ids: list[int]) -> dict[int, Task]:
    """The tasks of `task_ids`, locked in id order, each with its workflow (binary results)."""
    sql = (
        f"SELECT {_columns(Task, 't.')}, {_columns(Workflow, 'w.')} "
        f'FROM "{_T}" t INNER JOIN "{_W}" w ON w.id = t.workflow_id '
        "WHERE t.id = ANY(%b::bigint[]) ORDER BY t.id FOR UPDATE OF t"
    )
    task_names = [f.attname for f in Task._meta.concrete_fields]
    workflow_names = [f.attname for f in Workflow._meta.concrete_fields]
    n = len(task_names)
    alias = connection.alias
    tasks = {}
    for row in execute(sql, [task_ids], fetch=True, binary=True):
        task = Task.from_db(alias, task_names, row[:n])
        task.workflow = Workflow.from_db(alias, workflow_names, row[n:])
        tasks[task.pk] = task
    return tasks


def attempts_close(rows: list[tuple[int, int, str, str]], *, outcomes: dict[int, str], now) -> Write:
    """Close running attempts matched on (task, number) straight from arrays, no rows fetched."""
    sql = (
        f'UPDATE "{TaskAttempt._meta.db_table}" AS a SET status = v.status, summary = v.summary, '
        "outcome = v.outcome, finished_at = %b "
        "FROM unnest(%b::bigint[], %b::integer[], %b::text[], %b::text[], %b::text[]) "
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
