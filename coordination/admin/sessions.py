"""Admin pages of sessions: open one, rename it, pause or resume it; its crew and work inline."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, Q

from agents.models import Agent

from .. import services
from ..models import Session, Workflow
from ..services.sessions import session_create, session_update
from .helpers import ReadOnlyInline, ServiceForm, ServiceFormAdmin, run_for_each, status_badge


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


class SessionAdminForm(ServiceForm, forms.ModelForm):
    """Add: an empty session (agents join it on the agent page). Change: its name, goal and verify commands."""

    class Meta:
        model = Session
        fields = ("name", "goal", "workspace", "repository", "target_branch", "verify")
        help_texts = {
            "workspace": "Absolute directory inside a workspace root (HIVE_WORKSPACE_ROOTS); "
            "empty: a new one under the workspace root.",
            "verify": 'JSON list of argv lists, e.g. [["python", "-m", "pytest", "-q"]]; empty: none.',
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("workspace", "repository", "target_branch", "verify"):
            if name in self.fields:
                self.fields[name].required = False

    def call_service(self, cleaned: dict) -> Session:
        if self.instance.pk is None:
            return session_create(
                name=cleaned["name"],
                goal=cleaned["goal"],
                workspace=cleaned.get("workspace", ""),
                repository=cleaned.get("repository", ""),
                target_branch=cleaned.get("target_branch", ""),
                verify=cleaned.get("verify") or [],
                user=self.user,
            )
        changes = {name: cleaned[name] for name in self.changed_data if name in ("name", "goal", "verify")}
        if "verify" in changes:
            changes["verify"] = changes["verify"] or []  # an empty box: no commands
            if changes["verify"] == self.instance.verify:
                del changes["verify"]
        return session_update(session=self.instance, user=self.user, **changes)


@admin.register(Session)
class SessionAdmin(ServiceFormAdmin):
    form = SessionAdminForm
    list_display = ("name", "status_display", "workspace", "repository", "agent_count", "open_workflows", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("name", "goal", "workspace", "repository")
    date_hierarchy = "created_at"
    inlines = [AgentInline, WorkflowInline]
    actions = ["pause_sessions", "resume_sessions"]
    engine_fields = ("status", "slug", "team_config", "created_by", "created_at", "updated_at", "completed_at")
    input_fields = ("name", "goal", "workspace", "repository", "target_branch", "verify")

    def get_fields(self, request, obj=None):
        return list(self.input_fields) if obj is None else [*self.input_fields, *self.engine_fields]

    def get_readonly_fields(self, request, obj=None):
        # The workspace is where the crew already works and the repository holds its branches;
        # status moves through the actions.
        return () if obj is None else ("workspace", "repository", "target_branch", *self.engine_fields)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

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
