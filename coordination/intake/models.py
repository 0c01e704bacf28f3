"""Intake sources and the deliveries they accepted.

Secrets: a GitHub source names the environment variable that holds its webhook
secret (HMAC needs the secret itself, so it never enters the database); a JSON
source stores only the SHA-256 of its bearer token, shown once when issued.
"""

from __future__ import annotations

import os
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class IntakeSource(models.Model):
    """Where outside work comes from, and what it becomes: a workflow of `pattern` in `session`."""

    class Kind(models.TextChoices):
        GITHUB = "github", "GitHub webhook (issues and issue comments)"
        JSON = "json", "Generic JSON (bearer token, Idempotency-Key)"

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True, help_text="The source's URL: /api/intake/<slug>.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    active = models.BooleanField(default=True, help_text="An inactive source answers 404 and creates nothing.")
    session = models.ForeignKey(
        "coordination.Session",
        on_delete=models.PROTECT,
        related_name="intake_sources",
        help_text="The session whose crew gets the work.",
    )
    # A collaboration pattern's key (coordination.patterns); the admin form offers the choices.
    pattern = models.CharField(max_length=40, default="feature_delivery")
    priority = models.SmallIntegerField(default=0, validators=[MinValueValidator(-100), MaxValueValidator(100)])
    estimate_hours = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(10000)],
        help_text="Human hours one item takes (value metrics); empty: the pattern's default.",
    )
    # GitHub
    label = models.CharField(
        max_length=100, blank=True, help_text="GitHub: an issue with this label becomes work (case-insensitive)."
    )
    comment_command = models.CharField(
        max_length=100,
        blank=True,
        default="/hive retry",
        help_text="GitHub: a comment whose first line is this, by the repository's owner, a member or a "
        "collaborator, retries the failed tasks of the issue's workflow. Empty: comments do nothing.",
    )
    secret_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="GitHub: name of the environment variable holding the webhook secret "
        "(the same value as the webhook's Secret on GitHub).",
    )
    # JSON
    token_hash = models.CharField(max_length=64, blank=True, editable=False)
    token_hint = models.CharField(max_length=16, blank=True, editable=False, help_text="First characters of the token.")
    token_issued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=-100) & Q(priority__lte=100), name="intake_source_priority_range"
            ),
            models.CheckConstraint(
                condition=~Q(kind="github") | (~Q(label="") & ~Q(secret_env="")),
                name="intake_github_source_has_label_and_secret",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The one check of a source's configuration (admin forms and services use it)."""
        errors: dict[str, str] = {}
        if self.kind == self.Kind.GITHUB:
            if not self.label.strip():
                errors["label"] = "a GitHub source needs the label that turns an issue into work"
            if not self.secret_env:
                errors["secret_env"] = "a GitHub source needs the environment variable holding its webhook secret"
            elif not ENV_NAME.match(self.secret_env):
                errors["secret_env"] = "an environment variable name: capital letters, digits and underscores"
        if errors:
            raise ValidationError(errors)

    @property
    def path(self) -> str:
        return f"/api/intake/{self.slug}"

    def webhook_secret(self) -> bytes:
        """The GitHub webhook secret from the environment; empty when the variable is unset."""
        return os.environ.get(self.secret_env, "").encode() if self.secret_env else b""


class IntakeDelivery(models.Model):
    """One accepted request of a source. Refused requests (bad signature, replay, bad body) leave no row."""

    class Outcome(models.TextChoices):
        WORK_CREATED = "work_created", "Work created"
        COMMAND_APPLIED = "command_applied", "Command applied"
        PONG = "pong", "Ping answered"
        IGNORED = "ignored", "Nothing to do"

    source = models.ForeignKey(IntakeSource, on_delete=models.CASCADE, related_name="deliveries")
    # X-GitHub-Delivery, or the Idempotency-Key of a JSON request.
    key = models.CharField(max_length=200)
    event = models.CharField(max_length=40, help_text="GitHub event (issues, issue_comment, ping) or json.")
    action = models.CharField(max_length=40, blank=True)
    # The issue (or the URL a JSON item named) the delivery was about.
    item_url = models.CharField(max_length=500, blank=True, validators=[URLValidator(schemes=["http", "https"])])
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    detail = models.CharField(max_length=300, blank=True)
    workflow = models.ForeignKey(
        "coordination.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="intake_deliveries"
    )
    body_sha256 = models.CharField(max_length=64)
    # What the request was answered, returned again to a JSON request that repeats its key.
    response_status = models.PositiveSmallIntegerField()
    response = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "intake deliveries"
        indexes = [
            # Admin and source history: a source's deliveries, newest first.
            models.Index(fields=["source", "-received_at"], name="intake_delivery_recent_idx"),
        ]
        constraints = [
            # Deduplication: X-GitHub-Delivery / Idempotency-Key once per source (also serves the lookup).
            models.UniqueConstraint(fields=["source", "key"], name="intake_delivery_once_per_key"),
            # One workflow per issue: "opened" and "labeled" arrive together; only one creates work.
            models.UniqueConstraint(
                fields=["source", "item_url"],
                condition=Q(outcome="work_created") & ~Q(item_url=""),
                name="intake_one_workflow_per_item",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.event} {self.key}"
