"""The value assumptions behind every business-value figure, edited by operators."""

from __future__ import annotations

from django.contrib import admin

from .models import ValueAssumptions


@admin.register(ValueAssumptions)
class ValueAssumptionsAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request) -> bool:
        return not ValueAssumptions.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        # The figures already use the defaults, so show them as the row to edit.
        ValueAssumptions.current()
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
