"""Work: workflows (one run of a pattern), their tasks (steps) and the attempts at each task."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent

from .sessions import Session

# Links back to where outside work came from: web pages only (never javascript: or file:).
http_url = URLValidator(schemes=["http", "https"])


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
    BRANCH_MAX_LENGTH = 200

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
    # Delivery (sessions with a repository): the workflow branch and its way onto the target branch.
    branch = models.CharField(
        default="",
        db_default="",
        max_length=BRANCH_MAX_LENGTH,
        blank=True,
        help_text="Workflow branch, hive/<session-slug>/w<workflow-id>.",
    )
    base_sha = models.CharField(
        default="",
        db_default="",
        max_length=40,
        blank=True,
        help_text="Head of the target branch when the workflow branch was made.",
    )
    head_sha = models.CharField(
        default="",
        db_default="",
        max_length=40,
        blank=True,
        help_text="Current head of the workflow branch; advanced only by the task's current attempt, under its lock.",
    )
    expects_change = models.BooleanField(
        db_default=True,
        default=True,
        help_text="Implement steps must change files; switch off for work that is expected to change nothing.",
    )
    merge_queued_at = models.DateTimeField(
        null=True, blank=True, help_text="Entered the session's merge queue (served oldest first, then by id)."
    )
    delivered_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Merged and verified (or, without a repository, completed successfully): "
        "the one moment the workflow's value is counted.",
    )
    merge_commit = models.CharField(
        default="",
        db_default="",
        max_length=40,
        blank=True,
        help_text="Commit on the target branch that delivered this workflow.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Metrics: workflows finished in a time window, by status.
            models.Index(fields=["status", "completed_at"], name="workflow_finished_idx"),
            # Session page: workflows of a session.
            models.Index(fields=["session", "-created_at"], name="workflow_session_idx"),
            # Metrics: value of the workflows delivered in a time window.
            models.Index(fields=["delivered_at"], name="workflow_delivered_idx"),
            # Merger and console: a session's merge queue, oldest first (only queued, undelivered rows).
            models.Index(
                fields=["session", "merge_queued_at", "id"],
                condition=Q(merge_queued_at__isnull=False, delivered_at__isnull=True),
                name="workflow_merge_queue_idx",
            ),
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
    # Attempts whose runtime reported a failure. Retries stop when failures reach max_attempts; an
    # attempt lost with its daemon or agent (reclaimed) or handed back is not the task's failure.
    failures = models.PositiveSmallIntegerField(default=0, db_default=0)
    max_attempts = models.PositiveSmallIntegerField(
        default=3, help_text="Failed attempts allowed before a human decides."
    )
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
    # Delivery (sessions with a repository): where the attempt worked and what it changed.
    branch = models.CharField(
        default="",
        db_default="",
        max_length=Workflow.BRANCH_MAX_LENGTH,
        blank=True,
        help_text="Attempt branch, hive/<session-slug>/t<task-id>-a<attempt>.",
    )
    worktree = models.CharField(
        default="", db_default="", max_length=500, blank=True, help_text="Path of the attempt's git worktree."
    )
    base_sha = models.CharField(
        default="",
        db_default="",
        max_length=40,
        blank=True,
        help_text="Workflow branch head the attempt's worktree started from.",
    )
    head_sha = models.CharField(
        default="",
        db_default="",
        max_length=40,
        blank=True,
        help_text="Attempt branch head after the coordinator committed what was left.",
    )
    changed_files = models.JSONField(
        db_default=[], default=list, blank=True, help_text="Paths changed between base_sha and head_sha."
    )
    host = models.CharField(
        default="",
        db_default="",
        max_length=200,
        blank=True,
        help_text="Host the runtime ran on (for process fencing).",
    )
    pgid = models.IntegerField(
        null=True, blank=True, help_text="Process group of the runtime, killed when the attempt is reclaimed."
    )
    verified = models.BooleanField(
        null=True,
        blank=True,
        help_text="Outcome of the coordinator's own check of the claim; empty when not verified (no repository).",
    )

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
