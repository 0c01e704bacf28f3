"""Operator admin for agents: add them to a session, edit runtimes, pause, resume, restart — all through services."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from agents.models import Agent

from .. import services
from ..forms import BoundedJSONField
from ..services.agents_api import agent_create
from .helpers import ServiceForm, ServiceFormAdmin, human_age, run_for_each, status_badge

# Fields agent_update may change on an existing agent; everything else is the engine's.
UPDATABLE = ("name", "capabilities", "concurrency", "runtime", "runtime_config")


class AgentAdminForm(ServiceForm, forms.ModelForm):
    """Validated by the services with the API's serializer; a closed session refuses new agents (409)."""

    runtime_config = BoundedJSONField(
        required=False,
        help_text="JSON object checked against the runtime: command needs argv (a list), "
        "llm needs base_url and model, scripted takes duration_s, script, failure_rate…",
    )
    capabilities = BoundedJSONField(required=False, help_text='JSON list of strings, e.g. ["python", "django"]')

    class Meta:
        model = Agent
        fields = ("name", "role", "session", "runtime", "runtime_config", "capabilities", "concurrency")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "name" in self.fields:
            self.fields["name"].required = False
            self.fields["name"].help_text = "Empty on add: role-number, e.g. developer-2."
        if "session" in self.fields:
            self.fields["session"].required = True

    def call_service(self, cleaned: dict) -> Agent:
        config = cleaned.get("runtime_config")
        config = {} if config in (None, "") else config
        capabilities = cleaned.get("capabilities")
        capabilities = [] if capabilities in (None, "") else capabilities
        if self.instance.pk is None:
            return agent_create(
                session=cleaned["session"],
                role=cleaned["role"],
                name=cleaned.get("name", ""),
                runtime=cleaned["runtime"],
                runtime_config=config,
                capabilities=capabilities,
                concurrency=cleaned["concurrency"],
                user=self.user,
            )
        changes = {name: cleaned[name] for name in self.changed_data if name in UPDATABLE}
        if "runtime_config" in changes:
            changes["runtime_config"] = config
        if "capabilities" in changes:
            changes["capabilities"] = capabilities
        if "runtime" in changes:
            changes["runtime_config"] = config
        if not changes:
            return self.instance
        return services.agent_update(agent=self.instance, user=self.user, **changes)


@admin.register(Agent)
class AgentAdmin(ServiceFormAdmin):
    form = AgentAdminForm
    list_display = (
        "name",
        "role",
        "status_display",
        "runtime",
        "simulated",
        "session",
        "heartbeat_age",
        "load",
        "tasks_completed",
        "tasks_failed",
        "success",
    )
    list_filter = ("role", "status", "runtime", "session")
    search_fields = ("name", "session__name", "status_reason")
    list_select_related = ("session",)
    actions = ["pause_agents", "resume_agents", "restart_agents"]
    engine_fields = (
        "status",
        "status_reason",
        "active_tasks",
        "heartbeat_at",
        "tasks_completed",
        "tasks_failed",
        "collaboration_context",
        "success_patterns",
        "created_at",
        "updated_at",
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Role and team are fixed once an agent exists; the rest belongs to the engine.
        return ("role", "session", *self.engine_fields)

    def get_fields(self, request, obj=None):
        fields = list(AgentAdminForm.Meta.fields)
        return fields if obj is None else [*fields, *self.engine_fields]

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Agent):
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="simulated", boolean=True)
    def simulated(self, obj: Agent) -> bool:
        return obj.is_simulated or bool((obj.runtime_config or {}).get("simulated"))

    @admin.display(description="heartbeat", ordering="heartbeat_at")
    def heartbeat_age(self, obj: Agent) -> str:
        return human_age(obj.heartbeat_at)

    @admin.display(description="load")
    def load(self, obj: Agent) -> str:
        return f"{obj.active_tasks}/{obj.concurrency}"

    @admin.display(description="success rate")
    def success(self, obj: Agent) -> str:
        rate = obj.success_rate
        return "—" if rate is None else f"{rate:.0%}"

    @admin.action(description="Pause selected agents (no new work)", permissions=["operate"])
    def pause_agents(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            verb="Paused",
            call=lambda a: services.agent_pause(agent=a, user=request.user, reason="paused in the admin"),
        )

    @admin.action(description="Resume selected agents", permissions=["operate"])
    def resume_agents(self, request, queryset):
        run_for_each(
            self, request, queryset, verb="Resumed", call=lambda a: services.agent_resume(agent=a, user=request.user)
        )

    @admin.action(description="Restart selected agents (hand running work back)", permissions=["operate"])
    def restart_agents(self, request, queryset):
        run_for_each(
            self, request, queryset, verb="Restarted", call=lambda a: services.agent_restart(agent=a, user=request.user)
        )
