"""Recovery: take back what expired leases, dead daemons and silent agents left behind; hand back on shutdown."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from agents.models import Agent

from ...events import EventDraft, participant, participants
from ...models import CoordinationEvent, CoordinatorInstance, Task, TaskAttempt
from .. import locks
from ..flow import FlowBatch, decision_draft
from .store import store

E = CoordinationEvent.Type
# Reclaims of one task (its daemon or agent died under it) before a human is asked: a task that keeps
# taking its daemon down with it must not loop for ever. Failures count apart (Task.failures).
RECLAIM_LIMIT = 10


def tasks_reclaim_expired(*, now=None, limit: int = 500) -> int:
    """Take back tasks whose lease ran out or whose daemon is known dead or stopped, and hand them on."""
    now = now or timezone.now()
    gone = [CoordinatorInstance.Status.DEAD, CoordinatorInstance.Status.STOPPED]
    with locks.atomic():
        tasks = list(
            Task.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Task.Status.RUNNING)
            .filter(Q(lease_expires_at__lt=now) | Q(lease_owner__isnull=True) | Q(lease_owner__status__in=gone))
            .select_related("workflow", "agent")
            .order_by("id")[:limit]
        )
        if not tasks:
            return 0
        tasks_release(
            tasks=tasks, now=now, attempt_status=TaskAttempt.Status.RECLAIMED, reason="lease expired", offline=True
        )
    return len(tasks)


def tasks_reclaim_orphaned(*, coordinator: CoordinatorInstance, now=None, limit: int = 500) -> int:
    """Take back at once the running tasks of a daemon known dead, freeing their agents."""
    now = now or timezone.now()
    with locks.atomic():
        tasks = list(
            Task.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Task.Status.RUNNING, lease_owner_id=coordinator.pk)
            .select_related("workflow", "agent")
            .order_by("id")[:limit]
        )
        tasks_release(
            tasks=tasks,
            now=now,
            attempt_status=TaskAttempt.Status.RECLAIMED,
            reason=f"coordinator {coordinator.name} stopped responding",
            offline=True,
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
    with locks.atomic():
        # Lock order: tasks before agents, like every other writer.
        tasks = list(
            Task.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Task.Status.RUNNING, agent_id__in=stale_ids)
            .select_related("workflow", "agent")
            .order_by("id")
        )
        if tasks:
            tasks_release(
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
        store().bulk_set(Agent, agents, ["active_tasks", "status", "heartbeat_at"])
    return len(agents)


def tasks_hand_back(*, instance: CoordinatorInstance, task_ids: list[int], reason: str, now=None) -> int:
    """Return this daemon's in-flight tasks to the queue at once (graceful shutdown)."""
    if not task_ids:
        return 0
    now = now or timezone.now()
    with locks.atomic():
        tasks = list(
            Task.objects.select_for_update(of=("self",))
            .filter(pk__in=task_ids, lease_owner=instance, status=Task.Status.RUNNING)
            .select_related("workflow", "agent")
            .order_by("id")
        )
        tasks_release(tasks=tasks, now=now, attempt_status=TaskAttempt.Status.HANDED_BACK, reason=reason, offline=False)
    return len(tasks)


def tasks_release(*, tasks: list[Task], now, attempt_status: str, reason: str, offline: bool) -> None:
    """Put running `tasks` (locked by the caller, with workflow and agent) back in the queue.

    Their agents are unloaded, their running attempts closed with `attempt_status`,
    and a note tells the next agent where the last one stopped. `offline`: the
    work was lost (reclaim, an agent offline event per agent, attempts exhausted
    escalate to a decision); otherwise it was handed back on purpose.
    Lock order: the caller locked the tasks; agents are locked here by id.
    """
    if not tasks:
        return
    rows = store()
    agents = rows.agents_locked(sorted({t.agent_id for t in tasks if t.agent_id}))
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
        if offline and task.attempt - task.failures >= RECLAIM_LIMIT:
            task.status = Task.Status.BLOCKED
            decision_draft(
                task=task,
                workflow=task.workflow,
                kind="retries_exhausted",
                now=now,
                batch=batch,
                facts={"attempts": task.attempt, "error": f"lost {task.attempt - task.failures} times: {reason}"},
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
    rows.bulk_set(Task, tasks, ["status", "lease_owner", "lease_expires_at", "handoff_note", "ready_at"])
    rows.bulk_set(Agent, list(agents.values()), ["active_tasks", "status"])
    TaskAttempt.objects.filter(task__in=tasks, status=TaskAttempt.Status.RUNNING).update(
        status=attempt_status, finished_at=now, summary=reason
    )
    batch.events[:0] = drafts
    rows.flush(batch, now=now)
