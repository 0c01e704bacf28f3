"""Assumptions behind the business-value figures, edited by operators."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q


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
