"""Operator-facing writes: spawn a team, submit work, steer agents and tasks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent
from agents.runtimes import RuntimeConfigError, validate_runtime_config

from .. import patterns
from ..events import EventDraft, event_record, events_record, participants
from ..exceptions import ConflictError, DomainError
from ..inputs import AgentUpdateInputSerializer, SpawnInputSerializer, WorkInputSerializer, validate_input
from ..models import CoordinationEvent, Decision, Session, Task, TaskAttempt, Workflow, http_url
from . import locks
from .flow import FlowBatch, batch_flush, task_for_step
from .workspaces import workspace_prepare

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
    # False: an implement step may leave the repository unchanged (deliveries check the claim).
    expects_change: bool = True


def _spawn_input(*, name, goal, workspace, members, backlog, delivery) -> dict:
    """The spawn request validated by the API's serializer, whichever entry point it came from."""
    data = {"name": name, "goal": goal, "workspace": workspace, "backlog": [asdict(w) for w in backlog or []]}
    data.update(delivery)
    if members is not None:
        data["members"] = [asdict(m) for m in members]
    return validate_input(SpawnInputSerializer, data)


def team_spawn(
    *,
    name: str,
    goal: str = "",
    workspace: str = "",
    members: list[MemberSpec] | None = None,
    backlog: list[WorkSpec] | None = None,
    user=None,
    repository: str = "",
    target_branch: str = "",
    verify: list[list[str]] | None = None,
) -> Session:
    """Create a session with its crew (default: one agent per role) and optional first work.

    With a `repository`, the crew delivers to `target_branch` (default hive/<slug>/main) once `verify` passes.
    """
    if members is None:
        members = [MemberSpec(role=role, runtime_config=dict(DEFAULT_RUNTIME_CONFIG)) for role in DEFAULT_ROLES]
    delivery = {"repository": repository, "target_branch": target_branch, "verify": verify or []}
    data = _spawn_input(name=name, goal=goal, workspace=workspace, members=members, backlog=backlog, delivery=delivery)
    validated = [MemberSpec(**member) for member in data["members"]]
    names: set[str] = set()
    counters: dict[str, int] = {}
    for member in validated:
        if not member.name:
            counters[member.role] = counters.get(member.role, 0) + 1
            member.name = f"{member.role.replace('_', '-')}-{counters[member.role]}"
        if member.name in names:
            raise DomainError(f"duplicate agent name {member.name!r}", field="members")
        names.add(member.name)
    works = [_with_estimate(work) for work in data["backlog"]]
    path = workspace_prepare(data["workspace"], name=data["name"])
    now = timezone.now()
    with transaction.atomic():
        session = Session.objects.create(
            name=data["name"],
            goal=data["goal"],
            workspace=str(path),
            created_by=user if user and user.is_authenticated else None,
            team_config={"members": [{"role": m.role, "name": m.name, "runtime": m.runtime} for m in validated]},
            created_at=now,
            repository=data["repository"],
            target_branch=data["target_branch"],
            verify=data["verify"],
        )
        agents = Agent.objects.bulk_create(
            [
                Agent(
                    name=member.name,
                    role=member.role,
                    session=session,
                    runtime=member.runtime,
                    runtime_config=member.runtime_config,
                    capabilities=list(member.capabilities),
                    concurrency=member.concurrency,
                    heartbeat_at=now,
                )
                for member in validated
            ]
        )
        event_record(
            EventDraft(
                type=E.TEAM_SPAWNED,
                message=f"Team “{session.name}” spawned with {len(agents)} agents",
                session_id=session.pk,
                participants=participants(*agents),
                collaboration_data={"goal": session.goal, "workspace": str(path), "roles": [a.role for a in agents]},
                simulated=all(a.runtime == Agent.Runtime.SCRIPTED for a in agents),
            ),
            now=now,
        )
        for work in works:
            _submit(session=session, work=work, user=user, now=now)
    return session


def _validate_work(work: WorkSpec) -> WorkSpec:
    """The work as the API's serializer validates it, with the link to where it came from (intakes)."""
    data = validate_input(WorkInputSerializer, asdict(work))
    data["source_url"] = _source_url(work.source_url)
    return _with_estimate(data)


def _source_url(value: str) -> str:
    if value:
        try:
            http_url(value)
        except ValidationError as exc:
            raise DomainError("must be an http(s) URL", field="url") from exc
        if len(value) > 500:
            raise DomainError("at most 500 characters", field="url")
    return value


def _with_estimate(data: dict) -> WorkSpec:
    """Validated work; the pattern's default estimate when none is given."""
    if data["estimate_hours"] is None:
        data = {**data, "estimate_hours": patterns.get_pattern(data["pattern"]).default_estimate_hours}
    return WorkSpec(**data)


def work_submit(*, session: Session, work: WorkSpec, user=None) -> Workflow:
    """Start a workflow of `work.pattern` in `session`; its first task is ready at once."""
    work = _validate_work(work)
    with locks.atomic():
        status = locks.session_status_shared(session.pk)  # held to commit: no close slips in meanwhile
        if status in (Session.Status.COMPLETED, Session.Status.FAILED):
            raise ConflictError(f"session is {status}", field="session")
        return _submit(session=session, work=work, user=user, now=timezone.now())


def _submit(*, session: Session, work: WorkSpec, user, now) -> Workflow:
    """Create the workflow of already validated work (see _validate_work) and its first task."""
    estimate = work.estimate_hours
    pattern = patterns.get_pattern(work.pattern)
    workflow = Workflow.objects.create(
        session=session,
        pattern=pattern.key,
        title=work.title,
        description=work.description,
        priority=work.priority,
        files=list(work.files),
        human_estimate_hours=estimate,
        requested_by=user if user and user.is_authenticated else None,
        source_url=work.source_url,
        created_at=now,
        expects_change=work.expects_change,
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
    with locks.atomic():
        agent = locks.agent(agent.pk)
        if agent.status == Agent.Status.PAUSED:
            raise ConflictError("agent is already paused", field="status")
        agent.status = Agent.Status.PAUSED
        agent.status_reason = reason[:300]
        agent.save(update_fields=["status", "status_reason", "updated_at"])
        _agent_event(agent, E.AGENT_PAUSED, f"{agent.name} paused" + (f": {reason}" if reason else ""), reason=reason)
    return agent


def agent_resume(*, agent: Agent, user=None) -> Agent:
    with locks.atomic():
        agent = locks.agent(agent.pk)
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
    from .dispatch import tasks_release

    with locks.atomic():
        running = Task.objects.filter(agent=agent, status=Task.Status.RUNNING).values_list("pk", flat=True)
        locked = locks.tasks(running, related=("workflow", "agent")).values()
        tasks = [t for t in locked if t.status == Task.Status.RUNNING and t.agent_id == agent.pk]
        if tasks:
            tasks_release(
                tasks=tasks,
                now=timezone.now(),
                attempt_status=TaskAttempt.Status.HANDED_BACK,
                reason="agent restarted by an operator",
                offline=False,
            )
        agent = locks.agent(agent.pk)
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
    """Change an agent's name, capabilities, concurrency or runtime (validated as the API validates them)."""
    allowed = {"name", "capabilities", "concurrency", "runtime", "runtime_config"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainError("cannot be changed here", field=sorted(unknown)[0])
    changes = validate_input(AgentUpdateInputSerializer, changes)
    with locks.atomic():
        agent = locks.agent(agent.pk)
        runtime = changes.get("runtime", agent.runtime)
        if "runtime" in changes or "runtime_config" in changes:
            try:
                changes["runtime_config"] = validate_runtime_config(
                    runtime, changes.get("runtime_config", agent.runtime_config)
                )
            except RuntimeConfigError as exc:
                raise DomainError(errors={f"runtime_config.{k}": v for k, v in exc.errors.items()}) from exc
        if "concurrency" in changes and changes["concurrency"] < agent.active_tasks:
            raise ConflictError("lower than the tasks it runs now", field="concurrency")
        if "name" in changes and changes["name"] != agent.name and agent_name_taken(agent.session_id, changes["name"]):
            raise ConflictError(f"an agent named {changes['name']!r} already serves this session", field="name")
        for key, value in changes.items():
            setattr(agent, key, value)
        try:
            with transaction.atomic():
                agent.save()
        except IntegrityError as exc:  # a concurrent create or rename took the name
            raise ConflictError(f"an agent named {agent.name!r} already serves this session", field="name") from exc
        _agent_event(
            agent, E.AGENT_UPDATED, f"{agent.name} updated ({', '.join(sorted(changes))})", fields=sorted(changes)
        )
    return agent


def agent_name_taken(session_id: int | None, name: str) -> bool:
    return session_id is not None and Agent.objects.filter(session_id=session_id, name=name).exists()


# --- Tasks -----------------------------------------------------------------------


def task_retry(*, task: Task, user=None) -> Task:
    """Run a failed or blocked task again with fresh attempts."""
    now = timezone.now()
    with locks.atomic():
        task = locks.task(task.pk)
        if task.status not in (Task.Status.FAILED, Task.Status.BLOCKED, Task.Status.CANCELLED):
            raise ConflictError(
                f"only failed, blocked or cancelled tasks can be retried; this one is {task.status}", field="status"
            )
        if task.decisions.filter(status=Decision.Status.OPEN).exists():
            raise ConflictError("an open decision waits on this task; answer it instead", field="status")
        task.status = Task.Status.READY
        task.max_attempts = task.attempt + settings.HIVE["MAX_ATTEMPTS"]
        task.not_before = None
        task.ready_at = now
        task.save(update_fields=["status", "max_attempts", "not_before", "ready_at"])
        workflow = locks.workflow(task.workflow_id)
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
    """Cancel a task that has not finished, and the workflow it belongs to.

    Locks in the project's order (services/locks.py): the workflow's unfinished
    tasks, their open decisions, the agent, the workflow; statuses are read on the locked rows.
    """
    now = timezone.now()
    with locks.atomic():
        workflow_id = Task.objects.values_list("workflow_id", flat=True).get(pk=task.pk)
        open_ids = Task.objects.filter(workflow_id=workflow_id).exclude(status__in=Task.FINISHED_STATUSES)
        locked = locks.tasks([task.pk, *open_ids.values_list("pk", flat=True)], related=())
        task = locked[task.pk]
        if task.is_finished:
            raise ConflictError(f"task is already {task.status}", field="status")
        open_decisions = Decision.objects.filter(task_id=task.pk, status=Decision.Status.OPEN)
        decisions = locks.decisions(open_decisions.values_list("pk", flat=True))
        was_running = task.status == Task.Status.RUNNING
        agent = locks.agent(task.agent_id) if was_running and task.agent_id else None
        workflow = locks.workflow(workflow_id)
        task.workflow = workflow
        task.status = Task.Status.CANCELLED
        task.finished_at = now
        task.lease_owner = None
        task.lease_expires_at = None
        task.save(update_fields=["status", "finished_at", "lease_owner", "lease_expires_at"])
        if agent is not None:
            agent.active_tasks = max(0, agent.active_tasks - 1)
            if agent.active_tasks == 0 and agent.status == Agent.Status.BUSY:
                agent.status = Agent.Status.IDLE
            agent.save(update_fields=["active_tasks", "status"])
            TaskAttempt.objects.filter(task=task, status=TaskAttempt.Status.RUNNING).update(
                status=TaskAttempt.Status.FAILED, finished_at=now, summary="cancelled"
            )
        Decision.objects.filter(pk__in=[d.pk for d in decisions.values() if d.status == Decision.Status.OPEN]).update(
            status=Decision.Status.CANCELLED
        )
        if workflow.status in Workflow.OPEN_STATUSES:
            workflow.status = Workflow.Status.CANCELLED
            workflow.completed_at = now
            workflow.save(update_fields=["status", "completed_at"])
            # The workflow's waiting tasks were locked above.
            Task.objects.filter(workflow=workflow, status__in=[Task.Status.READY, Task.Status.BLOCKED]).update(
                status=Task.Status.CANCELLED, finished_at=now
            )
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


def session_set_status(
    *, session: Session, status: str, user=None, only_from: tuple[str, ...] | None = None, action: str = ""
) -> Session:
    """Pause, resume or close a session; a paused session's agents take no new work.

    With `only_from`, the move happens only from those statuses, read on the locked row (409 otherwise).
    """
    if status not in Session.Status.values:
        raise DomainError(f"unknown status {status!r}", field="status")
    now = timezone.now()
    with locks.atomic():
        session = locks.session(session.pk)
        previous = session.status
        if only_from is not None and previous not in only_from:
            raise ConflictError(f"cannot {action or 'move'} a session that is {previous}", field="status")
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
