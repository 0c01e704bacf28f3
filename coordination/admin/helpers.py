"""Building blocks of the operator admin, shared by every app's admin pages.

Badges and ages for list columns, per-object service calls for actions, and the
base classes of pages whose rows only the services write. They depend on Django
and on the domain's error and permission rules only, never on an admin page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from ..exceptions import DomainError
from ..permissions import is_operator
from .audit import admin_log_mirror_bulk

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

    def log_deletions(self, request, queryset):
        # Several deletions are logged with bulk_create, which sends no post_save to mirror them.
        entries = super().log_deletions(request, queryset)
        admin_log_mirror_bulk(entries)
        return entries


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


class ServiceForm:
    """Mixin for admin model forms whose saving is a service call.

    The service runs once the fields are clean: its refusals (400s and 409s, the
    same as the API's) come back on the form's fields, and on success the form's
    instance is the row the service wrote, so the admin's save writes nothing itself.
    """

    user = None  # set per request by ServiceFormAdmin.get_form

    def call_service(self, cleaned: dict):  # pragma: no cover - each form defines it
        raise NotImplementedError

    def _post_clean(self):
        if self.errors:
            return
        try:
            self.instance = self.call_service(self.cleaned_data)
        except DomainError as exc:
            for key, reason in (exc.errors or {"": exc.message}).items():
                name = key.split(".")[0].split("[")[0]
                if name in self.fields:
                    detail = key[len(name) :].lstrip(".")  # runtime_config.argv -> "argv: …" on runtime_config
                    self.add_error(name, f"{detail}: {reason}" if detail else reason)
                else:
                    self.add_error(None, f"{key}: {reason}" if key else reason)


class ServiceFormAdmin(OperatorActionsMixin, admin.ModelAdmin):
    """Add and change pages whose form saves through a service (see ServiceForm)."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    def save_model(self, request, obj, form, change):
        """The service already wrote the row while the form was validated."""

    def has_add_permission(self, request) -> bool:
        return is_operator(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_operator(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
