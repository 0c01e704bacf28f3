"""Deliveries: the coordinator's own verification runs, and the one-merger-per-repository lease."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .work import TaskAttempt, Workflow


class VerificationRun(models.Model):
    """One `verify` command run by the coordinator, on an attempt's claim or on a merged tree."""

    # Only the end of the output is kept: that is where test runners say what failed.
    OUTPUT_TAIL_MAX_CHARS = 20_000

    class Kind(models.TextChoices):
        CLAIM = "claim", "Claim of an attempt"
        MERGE = "merge", "Merged tree"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="verification_runs")
    # Indexed by verification_run_attempt_idx.
    attempt = models.ForeignKey(
        TaskAttempt,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verification_runs",
        db_index=False,
        help_text="Attempt whose claim was checked; empty for a run on a merged tree.",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, help_text="What was verified.")
    command = models.JSONField(default=list, help_text="The argv list that was run.")
    exit_code = models.IntegerField(
        null=True, blank=True, help_text="Exit status; empty when the command could not start or timed out."
    )
    output_tail = models.TextField(
        blank=True, help_text=f"Last {OUTPUT_TAIL_MAX_CHARS} characters of stdout and stderr."
    )
    duration_ms = models.PositiveIntegerField(default=0, help_text="Wall-clock time of the command.")
    passed = models.BooleanField(help_text="The command exited 0 within its time limit.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Workflow page and API: a workflow's runs in order.
            models.Index(fields=["workflow", "id"], name="verification_run_workflow_idx"),
            # Attempt detail: the runs that judged an attempt.
            models.Index(fields=["attempt", "id"], name="verification_run_attempt_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="claim") | Q(attempt__isnull=False), name="verification_run_claim_has_attempt"
            ),
        ]

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return f"{self.get_kind_display()} #{self.pk}: {' '.join(self.command)} {verdict}"


class MergeLock(models.Model):
    """Lease on merging into one repository: one merger at a time across daemons and machines.

    Taken by inserting the row (or taking over an expired one with a conditional update),
    renewed while merging, deleted when done.
    """

    repository = models.CharField(
        max_length=500, help_text="Repository key: the session's repository as given (path or URL)."
    )
    owner = models.CharField(max_length=200, help_text="Daemon holding the lease (its name, host:pid).")
    acquired_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(help_text="The lease is free to take over after this.")

    class Meta:
        ordering = ["repository"]
        constraints = [
            models.UniqueConstraint(fields=["repository"], name="merge_lock_one_per_repository"),
        ]

    def __str__(self) -> str:
        return f"{self.repository} held by {self.owner}"
