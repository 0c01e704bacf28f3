"""Applying results: fence each one on its attempt, move the workflow on, retry or escalate failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from agents.runtimes import Outcome, RuntimeResult

from ...events import EventDraft, one_publish, participants
from ...evidence import failure_evidence
from ...models import CoordinationEvent, CoordinatorInstance, Task, Workflow
from .. import locks
from ..flow import FlowBatch, decision_draft, move_apply
from .claims import Claim, tasks_claim
from .store import store

E = CoordinationEvent.Type
OUTPUT_LIMIT = 16_000


@dataclass(frozen=True)
class Finished:
    task_id: int
    attempt: int
    result: RuntimeResult


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
    with locks.atomic(), one_publish():
        counts = task_results_apply(instance=instance, finished=finished, now=now)
        claims = tasks_claim(instance=instance, limit=limit, now=now)
    return counts, claims


def task_results_apply(*, instance: CoordinatorInstance, finished: list[Finished], now=None) -> dict[str, int]:
    """Apply runtime results in one transaction; a result whose attempt is no longer current is rejected.

    The attempt number is the fencing token: a result counts only while its task
    is still running that very attempt under this daemon's lease, so a late
    result of a reclaimed attempt is recorded as rejected and never applied twice.
    Lock order: tasks, then agents, each by id.
    """
    counts = {"completed": 0, "retried": 0, "escalated": 0, "rejected": 0}
    if not finished:
        return counts
    now = now or timezone.now()
    rows = store()
    with transaction.atomic(savepoint=False), one_publish():
        tasks = rows.results_tasks(sorted({f.task_id for f in finished}))
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
        agents = rows.agents_locked(sorted(agent_ids))
        batch = FlowBatch()
        for task, item in rejected:
            counts["rejected"] += 1
            batch.events.append(_rejected_event(task, item))
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
        for agent in agents.values():
            if agent.active_tasks == 0 and agent.status == Agent.Status.BUSY:
                agent.status = Agent.Status.IDLE
            agent.heartbeat_at = now
        rows.results_write(
            attempts=attempts_close,
            outcomes=outcomes,
            tasks=[t for t, _ in accepted],
            agents=list(agents.values()),
            batch=batch,
            now=now,
        )
    return counts


def _rejected_event(task: Task, item: Finished) -> EventDraft:
    return EventDraft(
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
    task.failures += 1  # reclaimed attempts are not counted: only what the runtime reported as failed
    if task.failures < task.max_attempts:
        delay = settings.HIVE["RETRY_BACKOFF"] * (2 ** (task.failures - 1))
        task.status = Task.Status.READY
        task.ready_at = now
        task.not_before = now + timedelta(seconds=delay)
        batch.events.append(
            EventDraft(
                type=E.TASK_RETRY_SCHEDULED,
                message=f"“{task.title}” will be retried in {delay:.0f} s "
                f"(failed {task.failures} of {task.max_attempts} allowed times)",
                collaboration_data={
                    "attempt": task.attempt + 1,
                    "failures": task.failures,
                    "max_attempts": task.max_attempts,
                    "delay_s": delay,
                },
                **base,
            )
        )
        return "retried"
    task.status = Task.Status.BLOCKED
    evidence = failure_evidence(output=result.output, summary=reason)
    decision_draft(
        task=task,
        workflow=workflow,
        kind="retries_exhausted",
        now=now,
        batch=batch,
        facts={"attempts": task.failures, "error": evidence[:120], "evidence": evidence},
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
