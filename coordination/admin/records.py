"""Admin pages of the records the crew leaves: the audit trail, decisions and the daemons."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse

from .. import services
from ..models import CoordinationEvent, CoordinatorInstance, Decision, EventPrune
from .helpers import ReadOnlyAdmin, human_age, run_for_each, status_badge

# --- Events ------------------------------------------------------------------------


@admin.register(CoordinationEvent)
class CoordinationEventAdmin(ReadOnlyAdmin):
    """The audit trail: append-only, so nobody adds, changes or deletes here."""

    list_display = ("id", "created_at", "type", "message", "session", "workflow", "agent", "simulated")
    list_filter = ("type", "simulated", "session")
    search_fields = ("message",)
    list_select_related = ("session", "workflow", "agent")
    date_hierarchy = "created_at"
    # Counting a large event table on every page is the slow part; the pager does without.
    show_full_result_count = False
    actions = None


@admin.register(EventPrune)
class EventPruneAdmin(ReadOnlyAdmin):
    """Retention runs (`prune_events`, the daemons' daily run): what went, where it was archived."""

    list_display = (
        "id",
        "started_at",
        "trigger",
        "status_display",
        "older_than",
        "deleted",
        "pruned_through_id",
        "archive",
        "owner",
    )
    list_filter = ("status", "trigger")
    actions = None

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: EventPrune):
        return status_badge(obj.status, obj.get_status_display())


# --- Decisions -------------------------------------------------------------------------


class AnswerForm(forms.Form):
    option = forms.ChoiceField(label="Answer")
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, options: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["option"].choices = options


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "question",
        "kind",
        "status_display",
        "session",
        "option_list",
        "default_option",
        "deadline",
        "answer",
        "answered_by",
    )
    list_display_links = ("id", "question")
    list_filter = ("status", "kind", "session")
    search_fields = ("question", "comment")
    list_select_related = ("session", "answered_by")
    actions = ["answer_decisions"]

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Decision):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="options")
    def option_list(self, obj: Decision) -> str:
        return ", ".join(obj.option_keys)

    @admin.action(description="Answer selected decisions…", permissions=["operate"])
    def answer_decisions(self, request, queryset):
        """An intermediate page offers the options of the chosen decisions; each answer goes through the service."""
        decisions = list(queryset.order_by("pk"))
        options: dict[str, str] = {}
        for decision in decisions:
            for option in decision.options:
                options.setdefault(option["key"], option["label"])
        form = AnswerForm(request.POST if "apply" in request.POST else None, options=list(options.items()))
        if "apply" in request.POST and form.is_valid():
            option, comment = form.cleaned_data["option"], form.cleaned_data["comment"]
            run_for_each(
                self,
                request,
                queryset,
                verb=f"Answered “{option}”",
                call=lambda d: services.decision_answer(decision=d, option=option, user=request.user, comment=comment),
            )
            return None
        return TemplateResponse(
            request,
            "admin/coordination/decision/answer.html",
            {
                **self.admin_site.each_context(request),
                "title": "Answer decisions",
                "opts": self.model._meta,
                "decisions": decisions,
                "form": form,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "action": "answer_decisions",
            },
        )


# --- Daemons -----------------------------------------------------------------------------


@admin.register(CoordinatorInstance)
class CoordinatorInstanceAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "hostname",
        "pid",
        "status_display",
        "heartbeat_age",
        "concurrency",
        "tasks_processed",
        "last_tick_ms",
        "started_at",
        "stopped_at",
    )
    list_filter = ("status", "hostname")
    search_fields = ("name", "hostname")

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: CoordinatorInstance):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="heartbeat", ordering="heartbeat_at")
    def heartbeat_age(self, obj: CoordinatorInstance) -> str:
        return human_age(obj.heartbeat_at)
