"""Coordination state: sessions, workflows, tasks, events, decisions, daemons.

The database is the source of truth; every change of state is written by a
service (coordination/services.py) together with its CoordinationEvent.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent

# Links back to where outside work came from: web pages only (never javascript: or file:).
http_url = URLValidator(schemes=["http", "https"])


class Session(models.Model):
    """One team working toward a goal in one workspace."""

    NAME_MAX_LENGTH = 120
    WORKSPACE_MAX_LENGTH = 500

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=NAME_MAX_LENGTH)
    goal = models.TextField(blank=True)
    workspace = models.CharField(
        max_length=WORKSPACE_MAX_LENGTH, help_text="Directory the crew works in, normally a git repository."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    team_config = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Status page: active sessions, newest first.
            models.Index(fields=["status", "-created_at"], name="session_status_idx"),
        ]

    def __str__(self) -> str:
        return self.name


# Limits of submitted work. Serializers, forms, the team file and the admin read them from Workflow;
# the database enforces priority and estimate (workflow_*_within_limits, task_*_within_limits).
PRIORITY_MIN = -100
PRIORITY_MAX = 100
ESTIMATE_MAX_HOURS = Decimal("10000")


class Workflow(models.Model):
    """One run of a collaboration pattern inside a session."""

    TITLE_MAX_LENGTH = 200
    PRIORITY_MIN = PRIORITY_MIN
    PRIORITY_MAX = PRIORITY_MAX
    ESTIMATE_MAX_HOURS = ESTIMATE_MAX_HOURS
    FILE_PATH_MAX_LENGTH = 500

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        WAITING_HUMAN = "waiting_human", "Waiting for a human"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.RUNNING, Status.WAITING_HUMAN)

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="workflows")
    pattern = models.CharField(max_length=40)
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    priority = models.SmallIntegerField(default=0)
    files = models.JSONField(default=list, blank=True, help_text="Paths this work touches (conflict resolution).")
    # Human-hours the whole piece of work would have taken (value metrics).
    human_estimate_hours = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    # Interpreter state: rounds per loop, last handoff note, etc.
    state = models.JSONField(default=dict, blank=True)
    human_interventions = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Where the work came from (a GitHub issue, a ticket), when it arrived through an intake.
    source_url = models.CharField(max_length=500, blank=True, validators=[http_url])
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Metrics: workflows finished in a time window, by status.
            models.Index(fields=["status", "completed_at"], name="workflow_finished_idx"),
            # Session page: workflows of a session.
            models.Index(fields=["session", "-created_at"], name="workflow_session_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(human_estimate_hours__gte=0, human_estimate_hours__lte=ESTIMATE_MAX_HOURS),
                name="workflow_estimate_within_limits",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX),
                name="workflow_priority_within_limits",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class TaskQuerySet(models.QuerySet):
    def ready(self) -> TaskQuerySet:
        return self.filter(status=Task.Status.READY)

    def in_flight(self) -> TaskQuerySet:
        return self.filter(status=Task.Status.RUNNING)

    def lease_expired(self, *, now) -> TaskQuerySet:
        return self.filter(status=Task.Status.RUNNING, lease_expires_at__lt=now)


class Task(models.Model):
    """One step of a workflow for one role."""

    class Status(models.TextChoices):
        READY = "ready", "Ready"
        RUNNING = "running", "Running"
        BLOCKED = "blocked", "Blocked on a decision"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="tasks")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="tasks")
    step = models.CharField(max_length=40)
    role = models.CharField(max_length=32, choices=Agent.Role.choices)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    priority = models.SmallIntegerField(default=0)
    files = models.JSONField(default=list, blank=True)
    round = models.PositiveSmallIntegerField(default=1)
    handoff_note = models.TextField(blank=True)
    # Indexed by task_agent_idx (agent, -finished_at), which serves the foreign key too.
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks", db_index=False
    )
    pair_agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="paired_tasks")
    # Fencing token: a result is applied only if it carries the current attempt.
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    lease_owner = models.ForeignKey(
        "CoordinatorInstance", null=True, blank=True, on_delete=models.SET_NULL, related_name="leased_tasks"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Retry backoff: not claimed before this.")
    outcome = models.CharField(max_length=24, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    human_estimate_hours = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [
            # Claim: ready tasks of a role, highest priority first.
            models.Index(fields=["status", "role", "-priority", "id"], name="task_claim_idx"),
            # Reclaim: running tasks whose lease ran out.
            models.Index(fields=["status", "lease_expires_at"], name="task_lease_idx"),
            # Metrics: tasks finished in a time window.
            models.Index(fields=["finished_at"], name="task_finished_idx"),
            # Agent page: an agent's recent tasks.
            models.Index(fields=["agent", "-finished_at"], name="task_agent_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="running") | (Q(agent__isnull=False) & Q(lease_expires_at__isnull=False)),
                name="task_running_has_agent_and_lease",
            ),
            models.CheckConstraint(
                condition=Q(human_estimate_hours__gte=0, human_estimate_hours__lte=ESTIMATE_MAX_HOURS),
                name="task_estimate_within_limits",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX),
                name="task_priority_within_limits",
            ),
            models.CheckConstraint(condition=Q(cost_usd__gte=0), name="task_cost_non_negative"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES


class TaskAttempt(models.Model):
    """One execution of a task by one agent; the history behind retries and reclaims."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        RECLAIMED = "reclaimed", "Reclaimed (lease expired)"
        HANDED_BACK = "handed_back", "Handed back"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    agent = models.ForeignKey(Agent, null=True, on_delete=models.SET_NULL, related_name="attempts")
    coordinator = models.ForeignKey("CoordinatorInstance", null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    outcome = models.CharField(max_length=24, blank=True)
    summary = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="attempt_number_unique_per_task"),
            models.UniqueConstraint(
                fields=["task"], condition=Q(status="running"), name="one_running_attempt_per_task"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id}#{self.number}"


class CoordinationEventQuerySet(models.QuerySet):
    def delete(self):
        raise ValueError("Coordination events are append-only; old ones are removed by `manage.py prune_events`")

    def prune(self, *, ids: list[int]) -> int:
        """Delete these events: the one sanctioned deletion (retention), explicit by id.

        Called only by coordination.services.retention, in the transaction that moves the
        replay horizon (EventPrune.pruned_through_id) past them.
        """
        deleted, _ = models.QuerySet.delete(self.filter(id__in=ids))
        return deleted


class CoordinationEvent(models.Model):
    """Append-only record of every change of coordination state.

    The id increases monotonically and is the replay cursor for clients. Rows leave
    the table only through retention (`prune_events`), oldest ids first, so "every id up
    to the horizon is gone, every id above it is kept" holds at all times.
    """

    class Type(models.TextChoices):
        COORDINATOR_STARTED = "coordinator_started", "Coordinator started"
        COORDINATOR_STOPPED = "coordinator_stopped", "Coordinator stopped"
        TEAM_SPAWNED = "team_spawned", "Team spawned"
        SESSION_UPDATED = "session_updated", "Session updated"
        AGENT_PAUSED = "agent_paused", "Agent paused"
        AGENT_RESUMED = "agent_resumed", "Agent resumed"
        AGENT_RESTARTED = "agent_restarted", "Agent restarted"
        AGENT_OFFLINE = "agent_offline", "Agent offline"
        AGENT_UPDATED = "agent_updated", "Agent updated"
        WORK_SUBMITTED = "work_submitted", "Work submitted"
        COLLABORATION_STARTED = "collaboration_started", "Collaboration started"
        COLLABORATION_COMPLETED = "collaboration_completed", "Collaboration completed"
        COLLABORATION_FAILED = "collaboration_failed", "Collaboration failed"
        TASK_ASSIGNED = "task_assigned", "Task assigned"
        TASK_COMPLETED = "task_completed", "Task completed"
        TASK_FAILED = "task_failed", "Task failed"
        TASK_RETRY_SCHEDULED = "task_retry_scheduled", "Task retry scheduled"
        TASK_HANDOFF = "task_handoff", "Task handoff"
        TASK_RECLAIMED = "task_reclaimed", "Task reclaimed"
        TASK_CANCELLED = "task_cancelled", "Task cancelled"
        TASK_RESULT_REJECTED = "task_result_rejected", "Late result rejected"
        PAIR_PROGRAMMING = "pair_programming", "Pair programming"
        CODE_REVIEW_CYCLE = "code_review_cycle", "Code review cycle"
        CI_PIPELINE = "ci_pipeline", "CI/CD pipeline"
        CONFLICT_DETECTED = "conflict_detected", "Conflict detected"
        CONFLICT_RESOLVED = "conflict_resolved", "Conflict resolved"
        DECISION_REQUESTED = "decision_requested", "Decision requested"
        DECISION_ANSWERED = "decision_answered", "Decision answered"
        INTAKE_WORK_CREATED = "intake_work_created", "Work arrived from an intake"
        INTAKE_COMMAND = "intake_command", "Intake command applied"
        INTAKE_RECEIVED = "intake_received", "Intake delivery received"
        EVENTS_PRUNED = "events_pruned", "Old events pruned"
        SLO_BREACHED = "slo_breached", "Coordination objective breached"
        SLO_RECOVERED = "slo_recovered", "Coordination objective met again"
        VALIDATION_STARTED = "validation_started", "Validation run started"
        VALIDATION_PROGRESS = "validation_progress", "Validation run progress"
        VALIDATION_FINISHED = "validation_finished", "Validation run finished"

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40, choices=Type.choices)
    # No single-column indexes where a composite cursor index leads with the column:
    # every event insert maintains each index, and the dispatcher writes thousands a second.
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="events", db_index=False
    )
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="events", db_index=False
    )
    # [{"id": 3, "name": "dev-1", "role": "developer"}, …] as they were at the time.
    participants = models.JSONField(default=list, blank=True)
    message = models.CharField(max_length=500, blank=True)
    collaboration_data = models.JSONField(default=dict, blank=True)
    business_impact = models.JSONField(default=dict, blank=True)
    simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = CoordinationEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # Replay and the session event log: events of a session after a cursor.
            models.Index(fields=["session", "id"], name="event_session_cursor_idx"),
            # Event log filtered by type after a cursor.
            models.Index(fields=["type", "id"], name="event_type_cursor_idx"),
            # Agent page: an agent's events after a cursor.
            models.Index(fields=["agent", "id"], name="event_agent_cursor_idx"),
            # Metrics and time filters: events in a window.
            models.Index(fields=["created_at"], name="event_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Coordination events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Coordination events are append-only")


class EventPrune(models.Model):
    """One run of event retention: the audit of what was removed, and the replay horizon.

    Every event with id <= the largest `pruned_through_id` is gone; a client whose
    replay cursor is below it has missed events and is told so. A run holds a lease
    while it works, so one prune runs at a time across commands and daemons.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned (its lease ran out)"

    class Trigger(models.TextChoices):
        COMMAND = "command", "prune_events command"
        DAEMON = "daemon", "Daily run by a coordinator daemon"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    owner = models.CharField(max_length=200, help_text="host:pid (and daemon) that ran the prune.")
    older_than = models.DurationField()
    cutoff = models.DateTimeField(help_text="Events created before this are removed, oldest id first.")
    # Every event id up to this one is gone (0 until the first batch commits).
    pruned_through_id = models.BigIntegerField(default=0)
    deleted = models.PositiveBigIntegerField(default=0)
    archive = models.CharField(max_length=500, blank=True, help_text="gzip JSON-lines file of the removed events.")
    error = models.TextField(blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # Replay cursors: the horizon is the largest pruned_through_id.
            models.Index(fields=["-pruned_through_id"], name="event_prune_horizon_idx"),
            # Daily run: the last daemon run, by trigger and status.
            models.Index(fields=["trigger", "status", "-started_at"], name="event_prune_last_run_idx"),
        ]
        constraints = [
            # One prune at a time, across commands and daemons (a stale one is marked abandoned first).
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="one_running_event_prune"),
        ]

    def __str__(self) -> str:
        return f"prune #{self.pk} ({self.get_status_display()}, {self.deleted} events)"


class Decision(models.Model):
    """A question for a human; the task that waits on it is blocked, nothing else."""

    class Kind(models.TextChoices):
        REVIEW_DEADLOCK = "review_deadlock", "Review deadlock"
        DEPLOY_APPROVAL = "deploy_approval", "Deploy approval"
        RETRIES_EXHAUSTED = "retries_exhausted", "Retries exhausted"
        CONFLICT = "conflict", "Conflict"
        BUDGET_EXCEEDED = "budget_exceeded", "Budget exceeded"
        SLO_BREACHED = "slo_breached", "Coordination objective breached"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ANSWERED = "answered", "Answered"
        EXPIRED = "expired", "Expired (default applied)"
        CANCELLED = "cancelled", "Cancelled"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="decisions")
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.CASCADE, related_name="decisions")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="decisions")
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.OTHER)
    question = models.CharField(max_length=300)
    context = models.JSONField(default=dict, blank=True)
    # [{"key": "approve", "label": "Approve as is"}, …]
    options = models.JSONField(default=list)
    default_option = models.CharField(max_length=40)
    deadline = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    answer = models.CharField(max_length=40, blank=True)
    comment = models.TextField(blank=True)
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["deadline", "id"]
        indexes = [
            # Decision inbox and expiry: open decisions by deadline.
            models.Index(fields=["status", "deadline"], name="decision_open_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["task"], condition=Q(status="open"), name="one_open_decision_per_task"),
            models.CheckConstraint(
                condition=Q(status="open") | Q(status="cancelled") | ~Q(answer=""),
                name="decision_closed_has_answer",
            ),
        ]

    def __str__(self) -> str:
        return self.question

    @property
    def option_keys(self) -> list[str]:
        return [option["key"] for option in self.options]


class CoordinatorInstance(models.Model):
    """A running run_coordinator daemon: identity, heartbeat, health."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        DEAD = "dead", "Dead (heartbeat lost)"

    name = models.CharField(max_length=200)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    concurrency = models.PositiveSmallIntegerField(default=4)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    tasks_processed = models.PositiveBigIntegerField(default=0)
    last_tick_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # Health: live daemons by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="coordinator_health_idx"),
        ]

    def __str__(self) -> str:
        return self.name


# API tokens live in coordination.access, intake sources and their deliveries in
# coordination.intake; importing them here registers them with the app (and its migrations).
from .access.models import ApiToken  # noqa: E402, F401
from .intake.models import IntakeDelivery, IntakeSource  # noqa: E402, F401
