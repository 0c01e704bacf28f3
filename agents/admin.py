"""Operator admin for agents: register them, edit runtimes (validated), pause, resume, restart."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from coordination import services
from coordination.admin import OperatorActionsMixin, human_age, run_for_each, status_badge
from coordination.exceptions import DomainError

from .models import Agent
from .runtimes import RuntimeConfigError, validate_runtime_config

# Fields agent_update may change on an existing agent; everything else is the engine's.
UPDATABLE = ("name", "capabilities", "concurrency", "runtime", "runtime_config")


class AgentAdminForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = ("name", "role", "session", "runtime", "runtime_config", "capabilities", "concurrency")
        help_texts = {
            "runtime_config": "JSON object checked against the runtime: command needs argv (a list), "
            "llm needs base_url and model, scripted takes duration_s, script, failure_rate…",
        }

    def clean(self):
        cleaned = super().clean()
        runtime = cleaned.get("runtime", self.instance.runtime)
        if "runtime_config" in cleaned and runtime:
            try:
                cleaned["runtime_config"] = validate_runtime_config(runtime, cleaned["runtime_config"])
            except RuntimeConfigError as exc:
                for key, reason in exc.errors.items():
                    self.add_error("runtime" if key == "runtime" else "runtime_config", f"{key}: {reason}")
        concurrency = cleaned.get("concurrency")
        if concurrency is not None:
            if not 1 <= concurrency <= 32:
                self.add_error("concurrency", "must be between 1 and 32")
            elif self.instance.pk and concurrency < self.instance.active_tasks:
                self.add_error("concurrency", "lower than the tasks it runs now")
        capabilities = cleaned.get("capabilities")
        if capabilities is not None and not (
            isinstance(capabilities, list) and all(isinstance(item, str) for item in capabilities)
        ):
            self.add_error("capabilities", 'must be a JSON list of strings, e.g. ["python", "django"]')
        return cleaned


@admin.register(Agent)
class AgentAdmin(OperatorActionsMixin, admin.ModelAdmin):
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

    def has_delete_permission(self, request, obj=None) -> bool:
        # Tasks keep their agent while they run; retire an agent by pausing it.
        return False

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in UPDATABLE}
        if "runtime" in changes:
            changes["runtime_config"] = form.cleaned_data["runtime_config"]
        if not changes:
            return
        try:
            services.agent_update(agent=obj, user=request.user, **changes)
        except DomainError as exc:
            self.message_user(request, f"{obj.name} not updated — {exc.message}", messages.ERROR)

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
