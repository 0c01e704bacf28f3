"""Operators edit the value assumptions and the coordination objective; validation runs are read here."""

from __future__ import annotations

from django.contrib import admin

from .models import CoordinationObjective, ValidationRun, ValueAssumptions


class SingletonAdmin(admin.ModelAdmin):
    """A one-row model (`Model.current()`): shown at once with its defaults, edited, never added twice or deleted."""

    def has_add_permission(self, request) -> bool:
        return not self.model.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        # The figures already use the defaults, so show them as the row to edit.
        self.model.current()
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ValueAssumptions)
class ValueAssumptionsAdmin(SingletonAdmin):
    """One row: add it once, edit it, never delete it."""

    list_display = (
        "__str__",
        "currency",
        "hourly_rate",
        "working_hours_per_year",
        "team_size",
        "human_review_minutes_per_decision",
        "updated_at",
        "updated_by",
    )
    fields = (
        "currency",
        "hourly_rate",
        "working_hours_per_year",
        "team_size",
        "human_review_minutes_per_decision",
        "notes",
        "updated_at",
        "updated_by",
    )
    readonly_fields = ("updated_at", "updated_by")


@admin.register(CoordinationObjective)
class CoordinationObjectiveAdmin(SingletonAdmin):
    """One row, like the value assumptions: the objective the daemons judge the crew by."""

    list_display = ("__str__", "state", "last_ratio", "last_finished", "last_evaluated_at", "updated_by")
    fields = (
        "target_ratio",
        "window_minutes",
        "min_finished_workflows",
        "ignore_hours",
        "notes",
        "state",
        "state_since",
        "last_ratio",
        "last_finished",
        "last_evaluated_at",
        "decision",
        "updated_at",
        "updated_by",
    )
    readonly_fields = (
        "state",
        "state_since",
        "last_ratio",
        "last_finished",
        "last_evaluated_at",
        "decision",
        "updated_at",
        "updated_by",
    )


@admin.register(ValidationRun)
class ValidationRunAdmin(admin.ModelAdmin):
    """The record of validation runs; written by `validate_hive` only, so read-only here."""

    list_display = ("id", "status", "sandbox", "crew", "faults", "started_at", "finished_at", "started_by")
    list_filter = ("status", "sandbox")
    readonly_fields = [field.name for field in ValidationRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
