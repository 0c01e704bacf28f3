"""Intake sources (edited by operators) and their deliveries (read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Max
from django.template.response import TemplateResponse
from django.utils.html import format_html

from .. import patterns
from ..admin.helpers import OperatorActionsMixin, ReadOnlyAdmin, human_age, status_badge
from . import services
from .models import IntakeDelivery, IntakeSource

OUTCOME_COLOURS = {"work_created": "completed", "command_applied": "running", "pong": "idle", "ignored": "cancelled"}


class IntakeSourceForm(forms.ModelForm):
    pattern = forms.ChoiceField(choices=patterns.PATTERN_CHOICES, help_text="What each item of work becomes.")

    class Meta:
        model = IntakeSource
        fields = [
            "name",
            "slug",
            "kind",
            "active",
            "session",
            "pattern",
            "priority",
            "estimate_hours",
            "label",
            "comment_command",
            "secret_env",
        ]


@admin.register(IntakeSource)
class IntakeSourceAdmin(OperatorActionsMixin, admin.ModelAdmin):
    form = IntakeSourceForm
    list_display = ("name", "kind", "endpoint", "active", "session", "pattern", "credential", "delivery_count", "last")
    list_filter = ("kind", "active", "session")
    search_fields = ("name", "slug", "label")
    prepopulated_fields = {"slug": ("name",)}
    list_select_related = ("session",)
    actions = ["issue_tokens"]
    readonly_fields = ("endpoint", "credential", "token_issued_at", "created_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "slug", "kind", "active", "endpoint", "credential")}),
        ("What arriving work becomes", {"fields": ("session", "pattern", "priority", "estimate_hours")}),
        (
            "GitHub",
            {
                "fields": ("label", "comment_command", "secret_env"),
                "description": "Point a repository webhook (content type application/json, events: Issues and "
                "Issue comments) at the endpoint, with the secret held by the environment variable named here.",
            },
        ),
        ("History", {"fields": ("token_issued_at", "created_by", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(delivery_total=Count("deliveries"), last_at=Max("deliveries__received_at"))
        )

    @admin.display(description="endpoint")
    def endpoint(self, obj: IntakeSource) -> str:
        return f"POST {obj.path}" if obj.slug else "—"

    @admin.display(description="credential")
    def credential(self, obj: IntakeSource):
        if obj.kind == IntakeSource.Kind.GITHUB:
            if not obj.secret_env:
                return "—"
            state = "set" if obj.webhook_secret() else "NOT SET in this process's environment"
            return format_html("secret from <code>{}</code>: {}", obj.secret_env, state)
        if obj.token_hash:
            return format_html("token <code>{}…</code>", obj.token_hint)
        return "no token yet: use the action “Issue a new token”"

    @admin.display(description="deliveries", ordering="delivery_total")
    def delivery_count(self, obj: IntakeSource) -> int:
        return getattr(obj, "delivery_total", 0)

    @admin.display(description="last delivery", ordering="last_at")
    def last(self, obj: IntakeSource) -> str:
        return human_age(getattr(obj, "last_at", None))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Issue a new token for selected JSON sources…", permissions=["operate"])
    def issue_tokens(self, request, queryset):
        """Confirm first (the current tokens stop working), then show each new token once."""
        sources = list(queryset.filter(kind=IntakeSource.Kind.JSON).order_by("pk"))
        skipped = queryset.exclude(kind=IntakeSource.Kind.JSON).count()
        issued = []
        if "apply" in request.POST:
            for source in sources:
                issued.append((source, services.token_issue(source=source)))
                self.log_change(request, source, "Issued a new intake token")
        return TemplateResponse(
            request,
            "admin/coordination/intakesource/token.html",
            {
                **self.admin_site.each_context(request),
                "title": "Intake tokens",
                "opts": self.model._meta,
                "sources": sources,
                "skipped": skipped,
                "issued": issued,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "action": "issue_tokens",
            },
        )


@admin.register(IntakeDelivery)
class IntakeDeliveryAdmin(ReadOnlyAdmin):
    """What each accepted request did. Refused requests are answered with a 4xx and leave no row."""

    list_display = ("received_at", "source", "event", "action", "outcome_display", "detail", "workflow", "item")
    list_filter = ("source", "outcome", "event")
    search_fields = ("key", "detail", "item_url")
    list_select_related = ("source", "workflow")
    date_hierarchy = "received_at"

    @admin.display(description="outcome", ordering="outcome")
    def outcome_display(self, obj: IntakeDelivery):
        return status_badge(OUTCOME_COLOURS.get(obj.outcome, ""), obj.get_outcome_display())

    @admin.display(description="item")
    def item(self, obj: IntakeDelivery):
        if not obj.item_url:
            return "—"
        return format_html('<a href="{}" rel="noopener noreferrer">{}</a>', obj.item_url, obj.item_url)
