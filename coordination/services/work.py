"""Operator-facing writes: spawn a team, submit work, steer agents and tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from agents.runtimes import RuntimeConfigError, validate_runtime_config

from .. import patterns
from ..events import EventDraft, event_record, events_record, participants
from ..exceptions import ConflictError, DomainError
from ..models import CoordinationEvent, Session, Task, TaskAttempt, Workflow, http_url
from .flow import FlowBatch, batch_flush, task_for_step

E = CoordinationEvent.Type
DEFAULT_ROLES = [role.value for role in Agent.Role]
DEFAULT_RUNTIME_CONFIG = {"seed": 0, "duration_s": [1.0, 3.0]}


@dataclass
class MemberSpec:
    role: str
    name: str = ""
    runtime: str = Agent.Runtime.SCRIPTED
    runtime_config: dict = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    concurrency: int = 1


@dataclass
class WorkSpec:
    title: str
    description: str = ""
    pattern: str = patterns.FEATURE_DELIVERY.key
    priority: int = 0
    estimate_hours: Decimal | None = None
    files: list[str] = field(default_factory=list)
    # The issue or ticket the work came from (intakes); shown as a link where the workflow is.
    source_url: str = ""


def _validate_member(index: int, member: MemberSpec) -> tuple[MemberSpec, dict]:
    prefix = f"members[{index}]"
    if member.role not in Agent.Role.values:
        raise DomainError(
            f"unknown role {member.role!r}; choose one of {', '.join(Agent.Role.values)}", field=f"{prefix}.role"
        )
    if not 1 <= member.concurrency <= 32:
        raise DomainError("must be between 1 and 32", field=f"{prefix}.concurrency")
    try:
        config = validate_runtime_config(member.runtime, member.runtime_config)
    except RuntimeConfigError as exc:
        raise DomainError(errors={f"{prefix}.runtime_config.{k}": v for k, v in exc.errors.items()}) from exc
    return member, config


def _workspace_path(workspace: str, name: str) -> Path:
    if workspace:
        path = Path(workspace).expanduser()
        if not path.is_absolute():
            raise DomainError("must be an absolute path", field="workspace")
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "session"
        path = Path(settings.HIVE["WORKSPACE_ROOT"]) / f"{slug}-{timezone.now():%Y%m%d%H%M%S}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DomainError(f"cannot create {path}: {exc.strerror}", field="workspace") from exc
    return path


def team_spawn(
    *,
    name: str,
    goal: str = "",
    workspace: str = "",
    members: list[MemberSpec] | None = None,
    backlog: list[WorkSpec] | None = None,
    user=None,
) -> Session:
    """Create a session with its crew (default: one agent per role) and optional first work."""
    name = (name or "").strip()
    if not name:
        raise DomainError("is required", field="name")
    if members is None:
        members = [MemberSpec(role=role, runtime_config=dict(DEFAULT_RUNTIME_CONFIG)) for role in DEFAULT_ROLES]
    if not members:
        raise DomainError("a team needs at least one member", field="members")
    validated = [_validate_member(i, m) for i, m in enumerate(members)]
    names: set[str] = set()
    counters: dict[str, int] = {}
    for member, _ in validated:
        if not member.name:
            counters[member.role] = counters.get(member.role, 0) + 1
            member.name = f"{member.role.replace('_', '-')}-{counters[member.role]}"
        if member.name in names:
            raise DomainError(f"duplicate agent name {member.name!r}", field="members")
        names.add(member.name)
    for i, work in enumerate(backlog or []):
        _validate_work(work, prefix=f"backlog[{i}].")
    path = _workspace_path(workspace, name)
    now = timezone.now()
    with transaction.atomic():
        session = Session.objects.create(
            name=name[:120],
            goal=goal,
            workspace=str(path),
            created_by=user if user and user.is_authenticated else None,
            team_config={"members": [{"role": m.role, "name": m.name, "runtime": m.runtime} for m, _ in validated]},
            created_at=now,
        )
        agents = Agent.objects.bulk_create(
            [
                Agent(
                    name=member.name[:100],
                    role=member.role,
                    session=session,
                    runtime=member.runtime,
                    runtime_config=config,
                    capabilities=list(member.capabilities),
                    concurrency=member.concurrency,
                    heartbeat_at=now,
                )
                for member, config in validated
            ]
        )
        event_record(
            EventDraft(
                type=E.TEAM_SPAWNED,
                message=f"Team “{session.name}” spawned with {len(agents)} agents",
                session_id=session.pk,
                participants=participants(*agents),
                collaboration_data={"goal": goal, "workspace": str(path), "roles": [a.role for a in agents]},
                simulated=all(a.runtime == Agent.Runtime.SCRIPTED for a in agents),
            ),
            now=now,
        )
        for work in backlog or []:
            _submit(session=session, work=work, user=user, now=now)
    return session


def _validate_work(work: WorkSpec, *, prefix: str = "") -> Decimal:
    if not (work.title or "").strip():
        raise DomainError("is required", field=f"{prefix}title")
    if len(work.title) > 200:
        raise DomainError("at most 200 characters", field=f"{prefix}title")
    if work.pattern not in patterns.PATTERNS:
        raise DomainError(
            f"unknown pattern {work.pattern!r}; choose one of {', '.join(patterns.PATTERNS)}", field=f"{prefix}pattern"
        )
    if not -100 <= int(work.priority) <= 100:
        raise DomainError("must be between -100 and 100", field=f"{prefix}priority")
    if not isinstance(work.files, list) or not all(isinstance(f, str) and f for f in work.files):
        raise DomainError("must be a list of file paths", field=f"{prefix}files")
    if work.source_url:
        try:
            http_url(work.source_url)
        except ValidationError as exc:
            raise DomainError("must be an http(s) URL", field=f"{prefix}url") from exc
        if len(work.source_url) > 500:
            raise DomainError("at most 500 characters", field=f"{prefix}url")
    try:
        estimate = (
            Decimal(str(work.estimate_hours))
            if work.estimate_hours not in (None, "")
            else patterns.get_pattern(work.pattern).default_estimate_hours
        )
    except InvalidOperation as exc:
        raise DomainError("must be a number of hours", field=f"{prefix}estimate_hours") from exc
    if not Decimal("0") <= estimate <= Decimal("10000"):
        raise DomainError("must be between 0 and 10000 hours", field=f"{prefix}estimate_hours")
    return estimate


def work_submit(*, session: Session, work: WorkSpec, user=None) -> Workflow:
    """Start a workflow of `work.pattern` in `session`; its first task is ready at once."""
    _validate_work(work)
    if session.status in (Session.Status.COMPLETED, Session.Status.FAILED):
        raise ConflictError(f"session is {session.status}", field="session")
    with transaction.atomic():
        return _submit(session=session, work=work, user=user, now=timezone.now())


def _submit(*, session: Session, work: WorkSpec, user, now) -> Workflow:
    estimate = _validate_work(work)
    pattern = patterns.get_pattern(work.pattern)
    workflow = Workflow.objects.create(
        session=session,
        pattern=pattern.key,
        title=work.title.strip(),
        description=work.description,
        priority=work.priority,
        files=list(work.files),
        human_estimate_hours=estimate,
        requested_by=user if user and user.is_authenticated else None,
        source_url=work.source_url,
        created_at=now,
    )
    batch = FlowBatch()
    batch.events.append(
        EventDraft(
            type=E.WORK_SUBMITTED,
            message=f"Work submitted: “{workflow.title}” ({pattern.name}, ~{estimate} h)",
            session_id=session.pk,
            workflow_id=workflow.pk,
            collaboration_data={
                "pattern": pattern.key,
                "priority": work.priority,
                "files": work.files,
                **({"source_url": work.source_url} if work.source_url else {}),
            },
            business_impact={"human_estimate_hours": str(estimate)},
        )
    )
    batch.events.append(
        EventDraft(
            type=E.COLLABORATION_STARTED,
            message=f"{pattern.name} started for “{workflow.title}”: {pattern.description}",
            session_id=session.pk,
            workflow_id=workflow.pk,
            collaboration_data={"pattern": pattern.key, "steps": [s.key for s in pattern.steps]},
        )
    )
    task_for_step(workflow=workflow, step=pattern.first, note="", now=now, batch=batch)
    batch_flush(batch, now=now)
    return workflow


# --- Agents ---------------------------------------------------------------------------


def _agent_event(agent: Agent, type_: str, message: str, **data) -> None:
    event_record(
        EventDraft(
            type=type_,
            message=message,
            session_id=agent.session_id,
            agent_id=agent.pk,
            participants=participants(agent),
            collaboration_data=data,
        ),
        now=timezone.now(),
    )


def agent_pause(*, agent: Agent, user=None, reason: str = "") -> Agent:
    """Stop giving the agent new work; what it runs now finishes."""
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        if agent.status == Agent.Status.PAUSED:
            raise ConflictError("agent is already paused", field="status")
        agent.status = Agent.Status.PAUSED
        agent.status_reason = reason[:300]
        agent.save(update_fields=["status", "status_reason", "updated_at"])
        _agent_event(agent, E.AGENT_PAUSED, f"{agent.name} paused" + (f": {reason}" if reason else ""), reason=reason)
    return agent


def agent_resume(*, agent: Agent, user=None) -> Agent:
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        if agent.status not in (Agent.Status.PAUSED, Agent.Status.OFFLINE, Agent.Status.ERROR):
            raise ConflictError(f"agent is {agent.status}, not paused", field="status")
        agent.status = Agent.Status.BUSY if agent.active_tasks else Agent.Status.IDLE
        agent.status_reason = ""
        agent.heartbeat_at = timezone.now()
        agent.save(update_fields=["status", "status_reason", "heartbeat_at", "updated_at"])
        _agent_event(agent, E.AGENT_RESUMED, f"{agent.name} resumed")
    return agent


def agent_restart(*, agent: Agent, user=None) -> Agent:
    """Hand the agent's running tasks back to the queue and bring it back idle."""
    from .dispatch import _release

    with transaction.atomic():
        tasks = list(
            Task.objects.select_for_update(of=("self",))
            .filter(agent=agent, status=Task.Status.RUNNING)
            .select_related("workflow", "agent")
            .order_by("id")
        )
        if tasks:
            _release(
                tasks=tasks,
                now=timezone.now(),
                attempt_status=TaskAttempt.Status.HANDED_BACK,
                reason="agent restarted by an operator",
                offline=False,
            )
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        agent.status = Agent.Status.IDLE
        agent.active_tasks = 0
        agent.status_reason = ""
        agent.heartbeat_at = timezone.now()
        agent.save(update_fields=["status", "active_tasks", "status_reason", "heartbeat_at", "updated_at"])
        _agent_event(
            agent,
            E.AGENT_RESTARTED,
            f"{agent.name} restarted; {len(tasks)} task(s) handed back",
            handed_back=len(tasks),
        )
    return agent


def agent_update(*, agent: Agent, user=None, **changes) -> Agent:
    """Change an agent's name, capabilities, concurrency or runtime (validated)."""
    allowed = {"name", "capabilities", "concurrency", "runtime", "runtime_config"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainError("cannot be changed here", field=sorted(unknown)[0])
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        runtime = changes.get("runtime", agent.runtime)
        if "runtime" in changes or "runtime_config" in changes:
            try:
                changes["runtime_config"] = validate_runtime_config(
                    runtime, changes.get("runtime_config", agent.runtime_config)
                )
            except RuntimeConfigError as exc:
                raise DomainError(errors={f"runtime_config.{k}": v for k, v in exc.errors.items()}) from exc
        if "concurrency" in changes and not 1 <= int(changes["concurrency"]) <= 32:
            raise DomainError("must be between 1 and 32", field="concurrency")
        if "concurrency" in changes and int(changes["concurrency"]) < agent.active_tasks:
            raise ConflictError("lower than the tasks it runs now", field="concurrency")
        for key, value in changes.items():
            setattr(agent, key, value)
        agent.save()
        _agent_event(
            agent, E.AGENT_UPDATED, f"{agent.name} updated ({', '.join(sorted(changes))})", fields=sorted(changes)
        )
    return agent


# --- Tasks -----------------------------------------------------------------------


def task_retry(*, task: Task, user=None) -> Task:
    """Run a failed or blocked task again with fresh attempts."""
    now = timezone.now()
    with transaction.atomic():
        task = Task.objects.select_for_update(of=("self",)).select_related("workflow").get(pk=task.pk)
        if task.status not in (Task.Status.FAILED, Task.Status.BLOCKED, Task.Status.CANCELLED):
            raise ConflictError(
                f"only failed, blocked or cancelled tasks can be retried; this one is {task.status}", field="status"
            )
        if task.decisions.filter(status="open").exists():
            raise ConflictError("an open decision waits on this task; answer it instead", field="status")
        task.status = Task.Status.READY
        task.max_attempts = task.attempt + settings.HIVE["MAX_ATTEMPTS"]
        task.not_before = None
        task.ready_at = now
        task.save(update_fields=["status", "max_attempts", "not_before", "ready_at"])
        workflow = task.workflow
        if workflow.status != Workflow.Status.RUNNING:
            workflow.status = Workflow.Status.RUNNING
            workflow.completed_at = None
            workflow.save(update_fields=["status", "completed_at"])
        event_record(
            EventDraft(
                type=E.TASK_RETRY_SCHEDULED,
                message=f"“{task.title}” queued again by {getattr(user, 'username', 'an operator')}",
                session_id=task.session_id,
                workflow_id=task.workflow_id,
                task_id=task.pk,
                collaboration_data={"by": getattr(user, "username", ""), "attempt": task.attempt + 1},
            ),
            now=now,
        )
    return task


def task_cancel(*, task: Task, user=None, reason: str = "") -> Task:
    """Cancel a task that has not finished, and the workflow it belongs to."""
    now = timezone.now()
    with transaction.atomic():
        task = Task.objects.select_for_update(of=("self",)).select_related("workflow").get(pk=task.pk)
        if task.is_finished:
            raise ConflictError(f"task is already {task.status}", field="status")
        was_running = task.status == Task.Status.RUNNING
        task.status = Task.Status.CANCELLED
        task.finished_at = now
        task.lease_owner = None
        task.lease_expires_at = None
        task.save(update_fields=["status", "finished_at", "lease_owner", "lease_expires_at"])
        if was_running and task.agent_id:
            agent = Agent.objects.select_for_update().get(pk=task.agent_id)
            agent.active_tasks = max(0, agent.active_tasks - 1)
            if agent.active_tasks == 0 and agent.status == Agent.Status.BUSY:
                agent.status = Agent.Status.IDLE
            agent.save(update_fields=["active_tasks", "status"])
            TaskAttempt.objects.filter(task=task, status=TaskAttempt.Status.RUNNING).update(
                status=TaskAttempt.Status.FAILED, finished_at=now, summary="cancelled"
            )
        task.decisions.filter(status="open").update(status="cancelled")
        workflow = task.workflow
        if workflow.status in Workflow.OPEN_STATUSES:
            workflow.status = Workflow.Status.CANCELLED
            workflow.completed_at = now
            workflow.save(update_fields=["status", "completed_at"])
            Task.objects.filter(
                workflow=workflow, status__in=[Task.Status.READY, Task.Status.PENDING, Task.Status.BLOCKED]
            ).update(status=Task.Status.CANCELLED, finished_at=now)
        events_record(
            [
                EventDraft(
                    type=E.TASK_CANCELLED,
                    message=f"“{task.title}” cancelled" + (f": {reason}" if reason else ""),
                    session_id=task.session_id,
                    workflow_id=task.workflow_id,
                    task_id=task.pk,
                    collaboration_data={"by": getattr(user, "username", ""), "reason": reason},
                ),
                EventDraft(
                    type=E.COLLABORATION_FAILED,
                    message=f"“{workflow.title}” cancelled",
                    session_id=task.session_id,
                    workflow_id=workflow.pk,
                    collaboration_data={"pattern": workflow.pattern, "cancelled": True},
                ),
            ],
            now=now,
        )
    return task


def session_set_status(*, session: Session, status: str, user=None) -> Session:
    """Pause, resume or close a session; a paused session's agents take no new work."""
    if status not in Session.Status.values:
        raise DomainError(f"unknown status {status!r}", field="status")
    now = timezone.now()
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session.pk)
        previous = session.status
        session.status = status
        if status in (Session.Status.COMPLETED, Session.Status.FAILED):
            session.completed_at = now
        session.save(update_fields=["status", "completed_at", "updated_at"])
        event_record(
            EventDraft(
                type=E.SESSION_UPDATED,
                message=f"Session “{session.name}” {previous} → {status}",
                session_id=session.pk,
                collaboration_data={"from": previous, "to": status},
            ),
            now=now,
        )
    return session
