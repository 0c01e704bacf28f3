"""Applying a pattern's moves: the one place where work goes from step to step.

Used by the dispatcher (a runtime reported an outcome) and by decisions (a
human chose an option); both land here so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import waffle
from django.conf import settings

from agents.models import Agent

from .. import patterns
from ..events import EventDraft, events_record, participant, participants
from ..evidence import failure_evidence
from ..models import CoordinationEvent, Decision, Session, Task, Workflow

E = CoordinationEvent.Type
# What moves change on a workflow (the dispatcher's store writes the same fields).
WORKFLOW_FIELDS = ["status", "state", "completed_at", "delivered_at"]
NOTE_LIMIT = 4000


@dataclass
class FlowBatch:
    """Writes collected while applying moves, flushed by the caller in bulk."""

    new_tasks: list[Task] = field(default_factory=list)
    decisions: list[tuple[Decision, Task]] = field(default_factory=list)
    events: list[EventDraft] = field(default_factory=list)
    workflows: dict[int, Workflow] = field(default_factory=dict)
    # Sessions that deliver through a repository's merge queue (read once per batch, when a workflow ends).
    code_sessions: set[int] | None = None
    cancelled_workflows: set[int] = field(default_factory=set)

    def touch(self, workflow: Workflow) -> None:
        self.workflows[workflow.pk] = workflow

    def delivers_on_completion(self, workflow: Workflow) -> bool:
        """A workflow without a repository is delivered when it completes; one with one, when it is merged."""
        if self.code_sessions is None:
            self.code_sessions = set(Session.objects.exclude(repository="").values_list("pk", flat=True))
        return workflow.session_id not in self.code_sessions


def gate_required(gate: str) -> bool:
    """A step gate applies only while its switch is on (operators flip it in the admin)."""
    return bool(gate) and waffle.switch_is_active(f"require_{gate}")


def task_for_step(
    *, workflow: Workflow, step: patterns.Step, note: str, now, batch: FlowBatch, previous_agent: Agent | None = None
) -> Task:
    """A new task for `step`, counted in the workflow's visits (its round)."""
    pattern = patterns.get_pattern(workflow.pattern)
    visits = dict(workflow.state.get("visits", {}))
    visits[step.key] = int(visits.get(step.key, 0)) + 1
    workflow.state = {**workflow.state, "visits": visits}
    if previous_agent is not None:
        workflow.state["last_agent_id"] = previous_agent.pk
    gated = gate_required(step.gate)
    task = Task(
        workflow=workflow,
        session_id=workflow.session_id,
        step=step.key,
        role=step.role,
        title=step.title.format(title=workflow.title)[:200],
        description=workflow.description,
        status=Task.Status.BLOCKED if gated else Task.Status.READY,
        priority=workflow.priority,
        files=list(workflow.files),
        round=visits[step.key],
        handoff_note=note[:NOTE_LIMIT],
        max_attempts=settings.HIVE["MAX_ATTEMPTS"],
        # A step's share of the estimate is earned once: later rounds are rework, not more delivered work.
        human_estimate_hours=(
            patterns.step_estimate(pattern=pattern, step=step, workflow_estimate=Decimal(workflow.human_estimate_hours))
            if visits[step.key] == 1
            else Decimal("0")
        ),
        created_at=now,
        ready_at=None if gated else now,
    )
    batch.new_tasks.append(task)
    batch.touch(workflow)
    if gated:
        decision_draft(task=task, workflow=workflow, kind=step.gate, now=now, batch=batch, facts={})
    return task


def handoff_note(*, agent: Agent | None, step: patterns.Step, task: Task, summary: str, lead: str = "") -> str:
    """What the next agent is told: who did the previous step, what they said, and what they changed."""
    who = agent.name if agent else step.role.replace("_", " ")
    lines = [f"{lead}: " if lead else "", f"{who} finished {step.key} (round {task.round}): {summary or 'no summary'}"]
    result = task.result if isinstance(task.result, dict) else {}
    if result.get("diffstat"):
        lines.append(f"\nChanges:\n{result['diffstat']}")
    elif result.get("artifacts"):
        lines.append(f"\nChanged: {', '.join(map(str, result['artifacts'][:20]))}")
    return "".join(lines)


def decision_draft(*, task: Task, workflow: Workflow, kind: str, now, batch: FlowBatch, facts: dict) -> Decision:
    spec = patterns.DECISIONS[kind]
    values = {"title": workflow.title, "rounds": "", "attempts": task.attempt, "error": "", **facts}
    decision = Decision(
        session_id=workflow.session_id,
        workflow=workflow,
        kind=kind,
        question=spec.question.format(**values)[:300],
        context={"step": task.step, "round": task.round, "outcome": task.outcome, **facts},
        options=[{"key": o.key, "label": o.label} for o in spec.options],
        default_option=spec.default,
        deadline=now + timedelta(hours=settings.HIVE["DECISION_DEADLINE_HOURS"]),
        created_at=now,
    )
    batch.decisions.append((decision, task))
    workflow.status = Workflow.Status.WAITING_HUMAN
    batch.touch(workflow)
    return decision


def move_apply(
    *,
    task: Task,
    workflow: Workflow,
    outcome: str,
    agent: Agent | None,
    summary: str,
    output: str,
    now,
    batch: FlowBatch,
    state: dict | None = None,
) -> str:
    """Finish `task` with `outcome` and move its workflow on. Returns the move kind."""
    pattern = patterns.get_pattern(workflow.pattern)
    step = pattern.step(task.step)
    move = patterns.next_move(pattern=pattern, step_key=task.step, outcome=outcome, state=state or workflow.state)
    if move.kind == "retry":
        return "retry"
    workflow.state = move.state
    batch.touch(workflow)
    task.outcome = outcome
    simulated = task.simulated
    base = {
        "session_id": workflow.session_id,
        "workflow_id": workflow.pk,
        "task_id": task.pk,
        "agent_id": agent.pk if agent else None,
        "simulated": simulated,
    }
    if step.event:
        batch.events.append(
            EventDraft(
                type=step.event,
                message=_pattern_message(step=step, task=task, title=workflow.title, outcome=outcome, agent=agent),
                participants=participants(agent, task.pair_agent if task.pair_agent_id else None),
                collaboration_data={
                    "pattern": pattern.key,
                    "step": step.key,
                    "round": task.round,
                    "outcome": outcome,
                    "summary": summary[:300],
                },
                **base,
            )
        )
    if move.kind == "escalate":
        task.status = Task.Status.BLOCKED
        evidence = failure_evidence(output=output, summary=summary or outcome)
        facts = {
            "rounds": workflow.state.get("review_rounds", task.round),
            # the loop that ran out counts the failures (each round is a new task with attempt 1)
            "attempts": int(move.state.get(move.counter, task.attempt)) if move.counter else task.attempt,
            "error": evidence[:120],
            "evidence": evidence,
        }
        decision_draft(task=task, workflow=workflow, kind=move.escalate, now=now, batch=batch, facts=facts)
        return "escalate"

    task.status = Task.Status.COMPLETED
    task.finished_at = task.finished_at or now
    if move.kind == "advance":
        if outcome != patterns.SUCCESS:
            excerpt = output[-2000:] if output else ""
            evidence = failure_evidence(output=output, summary=summary)
            note = (
                f"{step.key} reported {outcome.replace('_', ' ')} on round {task.round}: {summary}\n"
                f"Evidence: {evidence}\n{excerpt}"
            )
        else:
            note = handoff_note(agent=agent, step=step, task=task, summary=summary, lead=move.note)
        new_task = task_for_step(
            workflow=workflow, step=move.step, note=note, now=now, batch=batch, previous_agent=agent
        )
        batch.events.append(
            EventDraft(
                type=E.TASK_HANDOFF,
                message=f"{agent.name if agent else step.role} handed “{workflow.title}” "
                f"to the {move.step.role.replace('_', ' ')}",
                participants=participants(agent),
                collaboration_data={
                    "pattern": pattern.key,
                    "from_step": step.key,
                    "to_step": move.step.key,
                    "to_role": move.step.role,
                    "round": new_task.round,
                    "note": note[:500],
                    "from": participant(agent),
                },
                **base,
            )
        )
        return "advance"

    # done or fail: the workflow ends here
    finished_ok = move.kind == "done"
    workflow.status = Workflow.Status.COMPLETED if finished_ok else Workflow.Status.FAILED
    workflow.completed_at = now
    if finished_ok and batch.delivers_on_completion(workflow):
        workflow.delivered_at = now
    batch.events.append(
        EventDraft(
            type=E.COLLABORATION_COMPLETED if finished_ok else E.COLLABORATION_FAILED,
            message=f"“{workflow.title}” {'delivered' if finished_ok else 'failed'} ({pattern.name})",
            participants=participants(agent),
            collaboration_data={"pattern": pattern.key, "state": workflow.state},
            business_impact={"human_estimate_hours": str(workflow.human_estimate_hours)} if finished_ok else {},
            **base,
        )
    )
    return move.kind


def _pattern_message(*, step: patterns.Step, task: Task, title: str, outcome: str, agent: Agent | None) -> str:
    who = agent.name if agent else step.role
    if step.event == E.CODE_REVIEW_CYCLE:
        verdict = "approved" if outcome == patterns.SUCCESS else "requested changes"
        return f"{who} {verdict} on review round {task.round} of “{title}”"
    if step.event == E.PAIR_PROGRAMMING:
        partner = task.pair_agent.name if task.pair_agent_id and task.pair_agent else "a partner"
        return f"{who} (driver) and {partner} (navigator) finished pair round {task.round}: {outcome}"
    if step.event == E.CI_PIPELINE:
        verdict = "passed" if outcome == patterns.SUCCESS else "failed"
        return f"Pipeline stage {step.key} {verdict} for “{title}”"
    if step.event == E.CONFLICT_RESOLVED:
        return (
            f"{who} {'resolved' if outcome == patterns.SUCCESS else 'could not resolve'} the conflict in “{task.title}”"
        )
    return f"{who} finished {step.key}: {outcome}"


def batch_flush(batch: FlowBatch, *, now, record=events_record) -> None:
    """Write what moves collected: new tasks, decisions, workflows, then the events.

    `record(drafts, now=now)` writes the events (the dispatcher passes its set-based writer).
    """
    if batch.new_tasks:
        Task.objects.bulk_create(batch.new_tasks)
    if batch.decisions:
        for decision, task in batch.decisions:
            decision.task_id = task.pk
        Decision.objects.bulk_create([decision for decision, _ in batch.decisions])
        for decision, task in batch.decisions:
            batch.events.append(
                EventDraft(
                    type=E.DECISION_REQUESTED,
                    message=decision.question,
                    session_id=decision.session_id,
                    workflow_id=decision.workflow_id,
                    task_id=task.pk,
                    collaboration_data={
                        "decision": decision.pk,
                        "kind": decision.kind,
                        "options": decision.options,
                        "default": decision.default_option,
                        "deadline": decision.deadline.isoformat(),
                    },
                    simulated=task.simulated,
                )
            )
    if batch.workflows:
        Workflow.objects.bulk_update(list(batch.workflows.values()), WORKFLOW_FIELDS)
    if batch.cancelled_workflows:
        Task.objects.filter(workflow_id__in=batch.cancelled_workflows, status=Task.Status.READY).update(
            status=Task.Status.CANCELLED, finished_at=now
        )

    record(batch.events, now=now)
