"""Operator admin for the coordination state.

Coordination rows change only through coordination.services, so these pages
are read-only views; what an operator may do (retry, cancel, answer, pause) is
offered as actions that call the services and report per object.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from agents.models import Agent

from . import services
from .exceptions import DomainError
from .models import (
    CoordinationEvent,
    CoordinatorInstance,
    Decision,
    EventPrune,
    Session,
    Task,
    TaskAttempt,
    Workflow,
)
from .permissions import is_operator

admin.site.site_header = "Agent Hive operations"
admin.site.site_title = "Agent Hive admin"
admin.site.index_title = "Crew, coordination and value settings"

# Colours of status badges; anything unlisted is grey.
BADGE_COLOURS = {
    "active": "#1a7f37",
    "running": "#0969da",
    "busy": "#0969da",
    "ready": "#8250df",
    "idle": "#1a7f37",
    "completed": "#1a7f37",
    "succeeded": "#1a7f37",
    "answered": "#1a7f37",
    "open": "#bf8700",
    "waiting_human": "#bf8700",
    "blocked": "#bf8700",
    "paused": "#bf8700",
    "stopping": "#bf8700",
    "failed": "#cf222e",
    "error": "#cf222e",
    "dead": "#cf222e",
    "offline": "#6e7781",
    "cancelled": "#6e7781",
    "expired": "#6e7781",
}


def status_badge(value: str, label: str):
    colour = BADGE_COLOURS.get(value, "#6e7781")
    return format_html(
        '<span style="background:{};color:#fff;border-radius:9px;padding:1px 8px;white-space:nowrap">{}</span>',
        colour,
        label,
    )


def human_age(moment, *, now=None) -> str:
    """“12 s ago”, “3 min ago”, “2 h ago”; “—” when never."""
    if moment is None:
        return "—"
    seconds = max(0, int(((now or timezone.now()) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def human_duration(start, end) -> str:
    if start is None:
        return "—"
    seconds = ((end or timezone.now()) - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s" + ("" if end else " (running)")
    return f"{timedelta(seconds=int(seconds))}" + ("" if end else " (running)")


def run_for_each(
    modeladmin: admin.ModelAdmin, request, queryset, *, verb: str, call: Callable[[object], object]
) -> None:
    """Call a service per object; a refused object is reported and the others still go ahead."""
    done, refused = [], []
    for obj in queryset.order_by("pk"):
        try:
            call(obj)
        except DomainError as exc:
            refused.append(f"{obj}: {exc.message}")
        else:
            done.append(str(obj))
    if done:
        modeladmin.message_user(request, f"{verb}: {', '.join(done)}", messages.SUCCESS)
    for line in refused:
        modeladmin.message_user(request, f"Not {verb.lower()} — {line}", messages.ERROR)


class OperatorActionsMixin:
    """Actions declared with permissions=["operate"] need operator rights."""

    def has_operate_permission(self, request) -> bool:
        return is_operator(request.user)


class ReadOnlyAdmin(OperatorActionsMixin, admin.ModelAdmin):
    """A view of rows that only the services write."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- Sessions ----------------------------------------------------------------


class AgentInline(ReadOnlyInline):
    model = Agent
    fields = ("name", "role", "status", "runtime", "active_tasks", "tasks_completed", "tasks_failed", "heartbeat_at")
    readonly_fields = fields
    ordering = ("role", "name")


class WorkflowInline(ReadOnlyInline):
    model = Workflow
    fields = ("title", "pattern", "status", "priority", "human_estimate_hours", "created_at", "completed_at")
    readonly_fields = fields
    ordering = ("-created_at",)


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = ("name", "status_display", "workspace", "agent_count", "open_workflows", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("name", "goal", "workspace")
    date_hierarchy = "created_at"
    inlines = [AgentInline, WorkflowInline]
    actions = ["pause_sessions", "resume_sessions"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                agent_total=Count("agents", distinct=True),
                open_total=Count("workflows", filter=Q(workflows__status__in=Workflow.OPEN_STATUSES), distinct=True),
            )
        )

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Session):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="agents", ordering="agent_total")
    def agent_count(self, obj: Session) -> int:
        return obj.agent_total

    @admin.display(description="open workflows", ordering="open_total")
    def open_workflows(self, obj: Session) -> int:
        return obj.open_total

    @admin.action(description="Pause selected sessions (agents take no new work)", permissions=["operate"])
    def pause_sessions(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            verb="Paused",
            call=lambda s: services.session_set_status(session=s, status=Session.Status.PAUSED, user=request.user),
        )

    @admin.action(description="Resume selected sessions", permissions=["operate"])
    def resume_sessions(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            verb="Resumed",
            call=lambda s: services.session_set_status(session=s, status=Session.Status.ACTIVE, user=request.user),
        )


# --- Workflows and tasks ---------------------------------------------------------


class TaskInline(ReadOnlyInline):
    model = Task
    fk_name = "workflow"
    fields = ("step", "role", "status", "round", "attempt", "agent", "outcome", "simulated", "finished_at")
    readonly_fields = fields
    ordering = ("id",)


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "title",
        "pattern",
        "status_display",
        "session",
        "priority",
        "task_count",
        "human_estimate_hours",
        "duration",
        "created_at",
    )
    list_display_links = ("id", "title")
    list_filter = ("status", "pattern", "session")
    search_fields = ("title", "description", "session__name")
    list_select_related = ("session",)
    date_hierarchy = "created_at"
    inlines = [TaskInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(task_total=Count("tasks"))

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Workflow):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="tasks", ordering="task_total")
    def task_count(self, obj: Workflow) -> int:
        return obj.task_total

    @admin.display(description="duration")
    def duration(self, obj: Workflow) -> str:
        return human_duration(obj.created_at, obj.completed_at)


class TaskAttemptInline(ReadOnlyInline):
    model = TaskAttempt
    fields = ("number", "agent", "coordinator", "status", "outcome", "summary", "started_at", "finished_at")
    readonly_fields = fields
    show_change_link = False


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "title",
        "workflow",
        "role",
        "status_display",
        "agent",
        "attempts",
        "round",
        "duration",
        "cost_usd",
        "simulated",
        "finished_at",
    )
    list_display_links = ("id", "title")
    list_filter = ("status", "role", "simulated", "workflow__pattern", "session")
    search_fields = ("title", "workflow__title", "agent__name")
    list_select_related = ("workflow", "agent")
    inlines = [TaskAttemptInline]
    actions = ["retry_tasks", "cancel_tasks"]
    exclude = ("depends_on",)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Task):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="attempt", ordering="attempt")
    def attempts(self, obj: Task) -> str:
        return f"{obj.attempt}/{obj.max_attempts}"

    @admin.display(description="duration")
    def duration(self, obj: Task) -> str:
        return human_duration(obj.started_at, obj.finished_at)

    @admin.action(description="Retry selected tasks", permissions=["operate"])
    def retry_tasks(self, request, queryset):
        run_for_each(
            self, request, queryset, verb="Queued again", call=lambda t: services.task_retry(task=t, user=request.user)
        )

    @admin.action(description="Cancel selected tasks (and their workflows)", permissions=["operate"])
    def cancel_tasks(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            verb="Cancelled",
            call=lambda t: services.task_cancel(task=t, user=request.user, reason="cancelled in the admin"),
        )


@admin.register(TaskAttempt)
class TaskAttemptAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "task", "agent", "status_display", "outcome", "started_at", "duration")
    list_filter = ("status", "outcome")
    search_fields = ("task__title", "agent__name", "summary")
    list_select_related = ("task", "agent")

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: TaskAttempt):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="duration")
    def duration(self, obj: TaskAttempt) -> str:
        return human_duration(obj.started_at, obj.finished_at)


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


# API tokens and sign-in unlocking, and intake sources and deliveries (coordination.intake),
# live in their own modules and use the helpers above.
from .access import admin as access_admin  # noqa: E402, F401
from .intake import admin as intake_admin  # noqa: E402, F401
