"""API tokens: hashed, named, scoped and expiring (a django-rest-knox token model, extended)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from knox.models import AbstractAuthToken, AuthTokenManager


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, *, now):
        """Tokens that authenticate: neither revoked nor expired."""
        return self.filter(revoked_at__isnull=True, expiry__gt=now)


class ApiToken(AbstractAuthToken):
    """A named, scoped, expiring API credential (django-rest-knox's token model, extended).

    Only a SHA-512 digest of the secret is stored (`digest`, knox), with the secret's first
    characters (`token_key`) to find candidates; the secret itself is shown once, at creation.
    A revoked or expired token stays as a row for the record and never authenticates again.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read"
        OPERATE = "operate", "Operate (read and write)"

    # Redeclared from knox: the lookup index gets a name, and apitoken_user_idx serves the user key.
    token_key = models.CharField(max_length=25)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_token_set", db_index=False
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. “CI bot” or “phone”.")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Who issued and who revoked it; never queried by these, so not indexed.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    # knox's manager: create(user=…, expiry=…, **fields) returns (token, secret).
    objects = AuthTokenManager.from_queryset(ApiTokenQuerySet)()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]
        indexes = [
            # Authentication: the candidates for a presented secret, by its first characters.
            models.Index(fields=["token_key"], name="apitoken_key_idx"),
            # Token page: a user's tokens, newest first.
            models.Index(fields=["user", "-created"], name="apitoken_user_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=["read", "operate"]), name="apitoken_scope_valid"),
            # Every token expires (knox allows none; this project does not).
            models.CheckConstraint(condition=Q(expiry__isnull=False), name="apitoken_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    @property
    def allows_write(self) -> bool:
        return self.scope == self.Scope.OPERATE

    def state(self, *, now=None) -> str:
        """active, expired or revoked: what the token page and the admin show."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expiry is not None and self.expiry <= (now or timezone.now()):
            return "expired"
        return "active"
