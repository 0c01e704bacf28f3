"""Decisions: questions for a human, with a deadline and a default."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .sessions import Session
from .work import Task, Workflow


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
