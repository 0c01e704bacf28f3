"""The append-only event log and the audit of its retention."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent

from .sessions import Session
from .work import Task, Workflow


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
        ADMIN_ACTION = "admin_action", "Admin action"
        COORDINATOR_DEAD = "coordinator_dead", "Coordinator dead (heartbeat lost)"
        VERIFICATION_PASSED = "verification_passed", "Verification passed"
        VERIFICATION_FAILED = "verification_failed", "Verification failed"
        FILES_OUTSIDE_DECLARED = "files_outside_declared", "Changed files outside those declared"
        MERGE_QUEUED = "merge_queued", "Queued for merge"
        MERGED = "merged", "Merged"
        MERGE_CONFLICT = "merge_conflict", "Merge conflict"
        DELIVERED = "delivered", "Delivered"
        WORKTREE_PRUNED = "worktree_pruned", "Worktree pruned"

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
    # Who made the change: a user name, or the daemon's name for what the coordinator did
    # (empty only for rows written before attribution). The API token's name when one was used.
    # Database defaults too: the dispatcher's bulk INSERT names only the columns it fills.
    actor = models.CharField(max_length=150, blank=True, default="", db_default="")
    actor_token = models.CharField(max_length=100, blank=True, default="", db_default="")
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
            # Audit trail: one actor's events after a cursor (API ?actor=, the session page's filter).
            models.Index(fields=["actor", "id"], name="event_actor_cursor_idx"),
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
