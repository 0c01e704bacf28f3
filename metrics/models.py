"""Operators' settings for the figures (value assumptions, the coordination objective) and validation runs."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ValueAssumptions(models.Model):
    """The single row of assumptions that turn recorded work into money.

    Every business-value figure is computed from task rows with these numbers;
    operators edit them in the admin and the figures follow.
    """

    singleton = models.BooleanField(default=True, editable=False)
    currency = models.CharField(max_length=3, default="USD")
    hourly_rate = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        default=Decimal("100.00"),
        help_text="Fully loaded cost of one developer hour.",
    )
    working_hours_per_year = models.PositiveIntegerField(
        default=1800, help_text="Hours one developer works in a year (annualisation)."
    )
    team_size = models.PositiveIntegerField(
        default=1, help_text="Human developers the crew works for (value per developer)."
    )
    human_review_minutes_per_decision = models.PositiveIntegerField(
        default=15, help_text="Human time each answered decision costs, charged against hours saved."
    )
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name = "value assumptions"
        verbose_name_plural = "value assumptions"
        constraints = [
            models.UniqueConstraint(fields=["singleton"], name="value_assumptions_singleton"),
            models.CheckConstraint(condition=Q(hourly_rate__gte=0), name="value_hourly_rate_non_negative"),
            models.CheckConstraint(condition=Q(working_hours_per_year__gt=0), name="value_hours_per_year_positive"),
            models.CheckConstraint(condition=Q(team_size__gt=0), name="value_team_size_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.hourly_rate} {self.currency}/h, {self.working_hours_per_year} h/year, team of {self.team_size}"

    @classmethod
    def current(cls) -> ValueAssumptions:
        obj, _ = cls.objects.get_or_create(singleton=True)
        return obj


class CoordinationObjective(models.Model):
    """The single row of the coordination-success objective (SLO) the daemons watch.

    Over the last `window_minutes`, the share of finished workflows delivered without a
    human must stay at or above `target_ratio`; below it an `slo_breached` event is
    written and a Decision is raised, back above it `slo_recovered`. The state fields are
    written by metrics.slo only.
    """

    class State(models.TextChoices):
        UNKNOWN = "unknown", "Not judged yet (too few finished workflows)"
        MET = "met", "Met"
        BREACHED = "breached", "Breached"

    singleton = models.BooleanField(default=True, editable=False)
    target_ratio = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.950"),
        help_text="Share of finished workflows that must be delivered without a human (0.950 = 95 %).",
    )
    window_minutes = models.PositiveIntegerField(default=60, help_text="Rolling window the share is computed over.")
    min_finished_workflows = models.PositiveIntegerField(
        default=5, help_text="The window is judged only when at least this many workflows finished in it."
    )
    ignore_hours = models.PositiveIntegerField(
        default=4, help_text="“Ignore” on a breach decision raises no new decision for this many hours."
    )
    notes = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNKNOWN, editable=False)
    state_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_ratio = models.FloatField(null=True, blank=True, editable=False)
    last_finished = models.PositiveIntegerField(default=0, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The decision raised by the current breach (None when met, or when the breach is ignored).
    decision = models.ForeignKey(
        "coordination.Decision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "coordination objective"
        verbose_name_plural = "coordination objective"
        constraints = [
            models.UniqueConstraint(fields=["singleton"], name="coordination_objective_singleton"),
            models.CheckConstraint(
                condition=Q(target_ratio__gt=0) & Q(target_ratio__lte=1), name="objective_target_is_a_share"
            ),
            models.CheckConstraint(condition=Q(window_minutes__gt=0), name="objective_window_positive"),
            models.CheckConstraint(condition=Q(min_finished_workflows__gt=0), name="objective_min_workflows_positive"),
        ]

    def __str__(self) -> str:
        return f"≥ {self.target_ratio * 100:.1f} % of workflows without a human over {self.window_minutes} min"

    @classmethod
    def current(cls) -> CoordinationObjective:
        obj, _ = cls.objects.get_or_create(singleton=True)
        return obj


class ValidationRun(models.Model):
    """One `manage.py validate_hive` run: its settings, the faults injected, the figures and the verdict."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed (a threshold was missed)"
        ERROR = "error", "Error (could not run to the end)"
        CANCELLED = "cancelled", "Cancelled (interrupted)"

    FINISHED_STATUSES = (Status.PASSED, Status.FAILED, Status.ERROR, Status.CANCELLED)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    sandbox = models.BooleanField(default=False, help_text="Ran in a throwaway SQLite database, since deleted.")
    crew = models.CharField(max_length=200, help_text="The demo crew, or the team file that was run.")
    faults = models.JSONField(default=list, blank=True, help_text="Faults injected, in the order asked.")
    # minutes, workflows, daemons, thresholds, database and channel layer, leases…
    options = models.JSONField(default=dict, blank=True, help_text="What it ran with and against.")
    # The report: success, exactly-once checks, reclaim times, latency, event completeness, fault log.
    figures = models.JSONField(default=dict, blank=True)
    # Names of the figures that missed their threshold (highlighted in the console).
    failed_checks = models.JSONField(default=list, blank=True)
    progress = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    command = models.CharField(max_length=500, blank=True, help_text="The command line that ran it.")
    host = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            # Console and API: runs, latest first.
            models.Index(fields=["-started_at", "-id"], name="validation_run_latest_idx"),
        ]
        constraints = [
            # One run at a time: two at once would measure each other's load.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="one_running_validation_run"
            ),
            models.CheckConstraint(
                condition=Q(status="running") | Q(finished_at__isnull=False), name="validation_finished_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"validation #{self.pk} ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES


class MetricHour(models.Model):
    """Sums of one closed hour of recorded work, per (role, agent): the rollup the long windows read.

    Rows are derived from task, attempt, workflow and decision rows only (never from events,
    which retention prunes), one hour at a time by metrics.rollups, and replaced whole when an
    hour is rolled again. Task figures are keyed by the hour of finished_at, attempt figures by
    the attempt's finished_at, workflow figures (role "", agent 0) by completed_at (delivered
    figures by the delivery time) and decision figures by answered_at.
    """

    hour = models.DateTimeField(help_text="Start of the hour (UTC).")
    role = models.CharField(max_length=32, blank=True)
    agent_id = models.BigIntegerField(default=0, help_text="0: no agent (workflow and decision figures).")
    # Tasks finished in the hour.
    finished = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    rework = models.PositiveIntegerField(default=0)
    worked = models.PositiveIntegerField(default=0, help_text="completed or failed")
    timed = models.PositiveIntegerField(default=0, help_text="completed or failed, with a start time")
    simulated_completed = models.PositiveIntegerField(default=0)
    estimate_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    simulated_estimate_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    busy_seconds = models.FloatField(default=0)
    simulated_busy_seconds = models.FloatField(default=0)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    simulated_cost = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    simulated_tasks = models.PositiveIntegerField(default=0)
    first_started = models.DateTimeField(null=True)
    last_finished = models.DateTimeField(null=True)
    # Attempts ended in the hour.
    attempts_succeeded = models.PositiveIntegerField(default=0)
    attempts_failed = models.PositiveIntegerField(default=0)
    # Workflows finished (and delivered) in the hour; decisions answered in it.
    workflows_finished = models.PositiveIntegerField(default=0)
    workflows_completed = models.PositiveIntegerField(default=0)
    workflows_unaided = models.PositiveIntegerField(default=0)
    review_visits = models.PositiveIntegerField(default=0)
    reviewed_workflows = models.PositiveIntegerField(default=0)
    workflows_delivered = models.PositiveIntegerField(default=0)
    delivered_estimate_hours = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    decisions_answered = models.PositiveIntegerField(default=0)
    decisions_waited = models.PositiveIntegerField(default=0)
    wait_seconds = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "role", "agent_id"], name="metric_hour_unique")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.role or '-'} {self.agent_id}"


class RollupState(models.Model):
    """The single row saying up to which hour MetricHour is complete (the watermark)."""

    singleton = models.BooleanField(default=True, unique=True, editable=False)
    rolled_through = models.DateTimeField(
        null=True, help_text="Every hour before this is in MetricHour; later rows are read raw."
    )
    updated_at = models.DateTimeField(auto_now=True)
