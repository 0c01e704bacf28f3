"""Sessions: one team, one goal, one workspace (and, for code work, one repository)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.text import slugify


class Session(models.Model):
    """One team working toward a goal in one workspace."""

    NAME_MAX_LENGTH = 120
    WORKSPACE_MAX_LENGTH = 500
    REPOSITORY_MAX_LENGTH = 500
    TARGET_BRANCH_MAX_LENGTH = 200
    SLUG_MAX_LENGTH = 60
    # Every branch the hive makes for a session lives under this prefix + the slug.
    BRANCH_NAMESPACE = "hive"

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
    repository = models.CharField(
        default="",
        db_default="",
        max_length=REPOSITORY_MAX_LENGTH,
        blank=True,
        help_text="Git repository the crew delivers to: a local path (bare or not) or a URL `git clone` accepts. "
        "Blank for non-code work.",
    )
    target_branch = models.CharField(
        default="",
        db_default="",
        max_length=TARGET_BRANCH_MAX_LENGTH,
        blank=True,
        help_text="Branch deliveries are merged onto; hive/<slug>/main when a repository is given and this is blank. "
        "Never a branch checked out in the repository's own working copy.",
    )
    verify = models.JSONField(
        db_default=[],
        default=list,
        blank=True,
        help_text="Commands the coordinator runs itself to verify a claim and a merge: a list of argv lists, "
        'e.g. [["python", "-m", "pytest", "-q"]].',
    )
    slug = models.SlugField(
        default="",
        db_default="",
        max_length=SLUG_MAX_LENGTH,
        blank=True,
        help_text="Stable name from the session's name and id, set once at creation: "
        "the branch namespace hive/<slug>/.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Status page: active sessions, newest first.
            models.Index(fields=["status", "-created_at"], name="session_status_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        if not self.slug:
            # Needs the id, so it is written right after the first insert, and never changed afterwards.
            self.slug = session_slug(name=self.name, pk=self.pk)
            changes = {"slug": self.slug}
            if self.repository and not self.target_branch:
                self.target_branch = changes["target_branch"] = self.default_target_branch
            type(self).objects.filter(pk=self.pk, slug="").update(**changes)

    @property
    def branch_prefix(self) -> str:
        """hive/<slug>/: the folder of every branch the hive makes for this session."""
        return f"{self.BRANCH_NAMESPACE}/{self.slug}/"

    @property
    def default_target_branch(self) -> str:
        return f"{self.branch_prefix}main"

    @property
    def effective_target_branch(self) -> str:
        """The branch deliveries land on: the one given, or hive/<slug>/main."""
        return self.target_branch or self.default_target_branch


def session_slug(*, name: str, pk: int) -> str:
    """`<slugified name>-<id>`: unique through the id, readable through the name, at most 60 characters."""
    suffix = f"-{pk}"
    base = slugify(name)[: Session.SLUG_MAX_LENGTH - len(suffix)].strip("-_") or "session"
    return f"{base}{suffix}"
