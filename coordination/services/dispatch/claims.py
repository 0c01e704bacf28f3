"""Claiming: lease ready tasks to matching free agents, several daemons sharing one queue."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.models import Agent
from agents.runtimes import TaskContext

from ... import patterns
from ...events import EventDraft, one_publish, participant, participants
from ...models import CoordinationEvent, CoordinatorInstance, Task
from .store import store

E = CoordinationEvent.Type


@dataclass(frozen=True)
class Claim:
    """A task leased to this daemon for one attempt, with what its runtime needs."""

    task_id: int
    attempt: int
    agent_id: int
    runtime: str
    runtime_config: dict
    context: TaskContext


def tasks_claim(*, instance: CoordinatorInstance, limit: int, now=None) -> list[Claim]:
    """Lease up to `limit` ready tasks to matching idle agents, in one transaction.

    Ready rows are locked with SKIP LOCKED so several daemons share the queue
    without ever assigning a task twice. Lock order: tasks, then agents (both
    SKIP LOCKED, so a claim never waits on another writer).
    """
    if limit <= 0:
        return []
    now = now or timezone.now()
    lease = timedelta(seconds=settings.HIVE["LEASE_SECONDS"])
    rows = store()
    capacity = rows.capacity(limit=limit)  # a plain read; rows are locked below
    if capacity is None:
        return []
    with transaction.atomic(savepoint=False), one_publish():
        candidates = rows.claim_candidates(capacity=capacity, now=now)
        if not candidates:
            return []
        session_ids = {t.session_id for t in candidates}
        pairing = any(_is_pair(t) for t in candidates)
        agents = rows.claim_agents(session_ids=session_ids, roles=None if pairing else {t.role for t in candidates})
        claimed, held = _match(candidates, agents, limit=limit)
        drafts = _held_events(held)
        claims = [_claimed(task, agent, navigator, drafts) for task, agent, navigator in claimed]
        touched = {a.pk: a for _, a, _ in claimed}
        for agent in touched.values():
            agent.status = Agent.Status.BUSY if agent.status != Agent.Status.PAUSED else agent.status
        rows.claim_write(
            held=held, claimed=claimed, touched=touched, drafts=drafts, instance=instance, now=now, lease=lease
        )
    return claims


def _match(candidates: list, agents: list, *, limit: int) -> tuple[list[tuple], list[tuple]]:
    """Pair candidates with agents, best task first: (task, agent, navigator) claimed, (task, blocker) held."""
    pool: dict[tuple[int, str], list] = defaultdict(list)
    for agent in agents:
        pool[(agent.session_id, agent.role)].append(agent)
    busy_files: dict[int, list[tuple[int, list]]] = defaultdict(list)
    if any(t.files for t in candidates):
        file_sessions = sorted({t.session_id for t in candidates if t.files})
        _files_lock(file_sessions)
        for task_id, session_id, files in Task.objects.filter(
            status=Task.Status.RUNNING, session_id__in=file_sessions
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
            blocker = next((tid for tid, files in busy_files[task.session_id] if set(files) & set(task.files)), None)
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
    return claimed, held


def _held_events(held: list[tuple]) -> list[EventDraft]:
    """A conflict event for each task newly waiting on another's files (its blocker noted in its result)."""
    drafts = []
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
    return drafts


def _claimed(task, agent, navigator, drafts: list[EventDraft]) -> Claim:
    """Move `task` to running on `agent` (in memory), append its events, and describe it for the runtime."""
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
            message=f"{agent.name} took “{task.title}”" + (f" (attempt {task.attempt})" if task.attempt > 1 else ""),
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
                message=f"{agent.name} drives, {navigator.name} navigates on “{workflow.title}” (round {task.round})",
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
    return Claim(
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


def _success_rate(agent: Agent, step: str) -> float:
    """The agent's record on this step: share of successes, 0.5 when it has none yet."""
    record = agent.success_patterns.get(step, {}) if isinstance(agent.success_patterns, dict) else {}
    done = record.get("ok", 0) + record.get("failed", 0)
    return record.get("ok", 0) / done if done else 0.5


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
