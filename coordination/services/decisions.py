"""Answering decisions: a human (or the deadline) picks an option and the blocked task moves on."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.utils import timezone

from agents.models import Agent

from .. import patterns
from ..events import EventDraft
from ..exceptions import ConflictError, DomainError
from ..models import CoordinationEvent, Decision, Session, Task, Workflow
from . import locks
from .flow import FlowBatch, batch_flush, move_apply

E = CoordinationEvent.Type


def decision_answer(*, decision: Decision, option: str, user=None, comment: str = "") -> Decision:
    """Record a human's answer and apply it; a second answer is a conflict.

    Locks in the project's order (services/locks.py): the open tasks of the
    decision's workflow, the decision, then the workflow; the status is read
    on the locked decision.
    """
    with locks.atomic():
        locked = _lock(decision.pk)
        if locked is None or locked.status != Decision.Status.OPEN:
            status = locked.status if locked is not None else "gone"
            raise ConflictError(f"decision is already {status}", field="option")
        if option not in locked.option_keys:
            raise DomainError(f"{option!r} is not one of {', '.join(locked.option_keys)}", field="option")
        _apply(decision=locked, option=option, user=user, comment=comment, automatic=False)
    return locked


def decisions_expire(*, now=None, limit: int = 100) -> int:
    """Apply the default option of decisions whose deadline passed, each in its own transaction."""
    now = now or timezone.now()
    due = list(
        Decision.objects.filter(status=Decision.Status.OPEN, deadline__lt=now)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    done = 0
    for pk in due:
        with locks.atomic():
            decision = _lock(pk)
            if decision is None or decision.status != Decision.Status.OPEN or decision.deadline >= now:
                continue  # answered meanwhile
            _apply(
                decision=decision, option=decision.default_option, user=None, comment="deadline passed", automatic=True
            )
            done += 1
    return done


def _lock(pk: int) -> Decision | None:
    """Lock what answering decision `pk` writes, in lock order: the open tasks of its workflow, then the decision."""
    row = Decision.objects.filter(pk=pk).values_list("task_id", "workflow_id").first()
    if row is None:
        return None
    task_id, workflow_id = row  # never change once written
    task_ids = {task_id} if task_id else set()
    if workflow_id:  # an abandon cancels the workflow's waiting tasks too
        task_ids |= set(
            Task.objects.filter(workflow_id=workflow_id)
            .exclude(status__in=Task.FINISHED_STATUSES)
            .values_list("pk", flat=True)
        )
    locks.tasks(task_ids, related=())
    return locks.decisions([pk]).get(pk)


def _apply(*, decision: Decision, option: str, user, comment: str, automatic: bool) -> None:
    """Answer a decision locked by _lock (with the tasks it may move)."""
    now = timezone.now()
    decision.status = Decision.Status.EXPIRED if automatic else Decision.Status.ANSWERED
    decision.answer = option
    decision.comment = comment
    decision.answered_by = user if user and user.is_authenticated else None
    decision.answered_at = now
    decision.save(update_fields=["status", "answer", "comment", "answered_by", "answered_at"])

    spec = patterns.DECISIONS.get(decision.kind)
    action = next((o.action for o in spec.options if o.key == option), "abandon") if spec else "abandon"
    batch = FlowBatch()
    who = getattr(user, "username", "") or ("the deadline" if automatic else "an operator")
    batch.events.append(
        EventDraft(
            type=E.DECISION_ANSWERED,
            message=f"{who} answered “{decision.question}”: {_label(decision, option)}",
            session_id=decision.session_id,
            workflow_id=decision.workflow_id,
            task_id=decision.task_id,
            collaboration_data={
                "decision": decision.pk,
                "option": option,
                "action": action,
                "automatic": automatic,
                "waited_s": round((now - decision.created_at).total_seconds(), 1),
                "by": getattr(user, "username", ""),
            },
        )
    )
    # Already locked by _lock: read again with the relations the answer needs.
    task = Task.objects.select_related("agent").get(pk=decision.task_id) if decision.task_id else None
    workflow = locks.workflow(decision.workflow_id) if decision.workflow_id else None
    if workflow is not None and not automatic:
        workflow.human_interventions += 1
        Workflow.objects.filter(pk=workflow.pk).update(human_interventions=workflow.human_interventions)
    if task is None and workflow is None and action == "pause_session":
        _session_pause(decision=decision)
    if task is not None and workflow is not None and task.status == Task.Status.BLOCKED:
        task.workflow = workflow
        _act(action=action, task=task, workflow=workflow, now=now, batch=batch)
        task.save(update_fields=["status", "outcome", "finished_at", "ready_at", "max_attempts", "not_before"])
        if (
            workflow.status == Workflow.Status.WAITING_HUMAN
            and not Decision.objects.filter(workflow=workflow, status=Decision.Status.OPEN).exists()
        ):
            workflow.status = Workflow.Status.RUNNING
        batch.touch(workflow)
    batch_flush(batch, now=now)


def _act(*, action: str, task: Task, workflow: Workflow, now, batch: FlowBatch) -> None:
    agent: Agent | None = task.agent
    pattern = patterns.get_pattern(workflow.pattern)
    if action == "release":
        task.status = Task.Status.READY
        task.ready_at = now
        workflow.status = Workflow.Status.RUNNING
        return
    if action == "retry":
        step = pattern.step(task.step)
        go = step.on.get(task.outcome)
        if go is not None and go.counter:
            # A loop hit its bound: grant another pass through it.
            action = "loop"
        else:
            task.status = Task.Status.READY
            task.ready_at = now
            task.not_before = None
            task.max_attempts = task.attempt + settings.HIVE["MAX_ATTEMPTS"]
            workflow.status = Workflow.Status.RUNNING
            return
    workflow.status = Workflow.Status.RUNNING
    if action == "accept":
        move_apply(
            task=task,
            workflow=workflow,
            outcome=patterns.SUCCESS,
            agent=agent,
            summary="accepted by a human",
            output="",
            now=now,
            batch=batch,
        )
        return
    if action == "loop":
        state = patterns.loop_grant(pattern=pattern, step_key=task.step, outcome=task.outcome, state=workflow.state)
        move_apply(
            task=task,
            workflow=workflow,
            outcome=task.outcome,
            agent=agent,
            summary="another round granted by a human",
            output=task.result.get("output", ""),
            now=now,
            batch=batch,
            state=state,
        )
        return
    # abandon
    task.status = Task.Status.CANCELLED
    task.finished_at = now
    workflow.status = Workflow.Status.CANCELLED
    workflow.completed_at = now
    batch.cancelled_workflows.add(workflow.pk)
    batch.events.append(
        EventDraft(
            type=E.COLLABORATION_FAILED,
            message=f"“{workflow.title}” stopped by decision",
            session_id=workflow.session_id,
            workflow_id=workflow.pk,
            task_id=task.pk,
            collaboration_data={"pattern": workflow.pattern, "cancelled": True},
        )
    )


def _session_pause(*, decision: Decision) -> None:
    """A decision about the whole crew chose to pause its session (takes effect in this transaction)."""
    from . import session_set_status  # the package's export, wherever the service lives

    with contextlib.suppress(ConflictError):  # no longer active: nothing to pause
        session_set_status(session=decision.session, status=Session.Status.PAUSED, only_from=(Session.Status.ACTIVE,))


def _label(decision: Decision, option: str) -> str:
    return next((o["label"] for o in decision.options if o["key"] == option), option)
