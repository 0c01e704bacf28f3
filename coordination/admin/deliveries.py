"""Admin pages of deliveries: the verification runs the coordinator recorded and the merge leases it holds."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from ..models import MergeLock, VerificationRun
from .helpers import ReadOnlyAdmin, human_age, status_badge


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    """Every `verify` command the coordinator ran on a claim or a merged tree, with its output's tail."""

    list_display = ("id", "created_at", "workflow", "kind", "command_line", "verdict", "exit_code", "duration_ms")
    list_display_links = ("id", "command_line")
    list_filter = ("kind", "passed")
    search_fields = ("workflow__title", "output_tail")
    list_select_related = ("workflow",)
    date_hierarchy = "created_at"
    actions = None

    @admin.display(description="command")
    def command_line(self, obj: VerificationRun) -> str:
        return " ".join(obj.command)

    @admin.display(description="verdict", ordering="passed")
    def verdict(self, obj: VerificationRun):
        return status_badge("completed" if obj.passed else "failed", "passed" if obj.passed else "failed")


@admin.register(MergeLock)
class MergeLockAdmin(ReadOnlyAdmin):
    """Which daemon merges into which repository right now; a lease past its time is free to take over."""

    list_display = ("repository", "owner", "acquired_at", "expires_at", "state")
    search_fields = ("repository", "owner")
    actions = None

    @admin.display(description="lease")
    def state(self, obj: MergeLock):
        now = timezone.now()
        if obj.expires_at <= now:
            return status_badge("expired", f"expired {human_age(obj.expires_at, now=now)}")
        return status_badge("running", "held")
