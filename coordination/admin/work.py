"""Admin pages of workflows and tasks: add work, retry or cancel tasks, read their attempts."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count

from .. import services
from ..forms import SubmitWorkForm
from ..models import Task, TaskAttempt, Workflow
from ..services import WorkSpec
from .helpers import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    ServiceForm,
    ServiceFormAdmin,
    human_duration,
    run_for_each,
    status_badge,
)


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
        "delivered_at",
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


class TaskAdminForm(ServiceForm, forms.ModelForm, SubmitWorkForm):
    """Adding a task submits work: a workflow of the chosen pattern whose first task is ready at once."""

    class Meta:
        model = Task
        fields = ()

    def call_service(self, cleaned: dict) -> Task:
        work = WorkSpec(
            title=cleaned["title"],
            description=cleaned["description"],
            pattern=cleaned["pattern"],
            priority=cleaned["priority"],
            estimate_hours=cleaned["estimate_hours"],
            files=cleaned["files"],
            expects_change=cleaned["expects_change"],
        )
        workflow = services.work_submit(session=cleaned["session"], work=work, user=self.user)
        return workflow.tasks.order_by("id").first()


@admin.register(Task)
class TaskAdmin(ServiceFormAdmin):
    form = TaskAdminForm
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

    def get_fields(self, request, obj=None):
        if obj is None:
            return list(SubmitWorkForm.base_fields)
        return [field.name for field in Task._meta.fields if field.name != "id"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def has_change_permission(self, request, obj=None) -> bool:
        # A task changes only through its actions (retry, cancel) and the coordinator.
        return False

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
