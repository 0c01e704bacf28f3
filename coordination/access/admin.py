"""Admin for access: API tokens (issue, show the secret once, revoke) and unlocking sign-in.

Tokens are issued and revoked through coordination.access.services, like everywhere else;
the secret appears once, on the page that answers the "add" form, and is never stored or
put in a message.
"""

from __future__ import annotations

from datetime import timedelta

from axes.admin import AccessAttemptAdmin
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from ..admin.helpers import human_age, status_badge
from ..exceptions import DomainError
from .models import ApiToken
from .services import token_issue, token_issue_errors, token_revoke

STATE_COLOURS = {"active": "active", "expired": "expired", "revoked": "cancelled"}


class ApiTokenAddForm(forms.ModelForm):
    expires_in_days = forms.IntegerField(
        min_value=1,
        label="Expires in (days)",
        help_text="The token stops working after this many days.",
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name", "scope"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in_days"].initial = settings.HIVE_TOKEN_TTL_DAYS

    def clean(self):
        data = super().clean()
        if data.get("user") is None or data.get("expires_in_days") is None:
            return data
        errors = token_issue_errors(
            user=data["user"],
            name=data.get("name", ""),
            scope=data.get("scope", ""),
            lifetime=timedelta(days=data["expires_in_days"]),
        )
        for field, reason in errors.items():
            field = "expires_in_days" if field == "expires" else field
            if field not in self.errors:  # "required" from the field already says it
                self.add_error(field, reason)
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "scope", "state_badge", "created", "expiry", "last_used", "created_by"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username"]
    list_select_related = ["user", "created_by"]
    actions = ["revoke_tokens"]
    readonly_fields = [
        "user",
        "scope",
        "state_badge",
        "created",
        "expiry",
        "last_used_at",
        "created_by",
        "revoked_at",
        "revoked_by",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
            kwargs["fields"] = ["user", "name", "scope", "expires_in_days"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "scope", "expires_in_days"]
        return ["name", *self.readonly_fields]

    @admin.display(description="state")
    def state_badge(self, obj: ApiToken):
        state = obj.state()
        return status_badge(STATE_COLOURS[state], state)

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, obj: ApiToken) -> str:
        return human_age(obj.last_used_at)

    def save_model(self, request, obj, form, change):
        if change:  # only the name can change
            obj.save(update_fields=["name"])
            return
        data = form.cleaned_data
        token, secret = token_issue(
            user=data["user"],
            name=data["name"],
            scope=data["scope"],
            lifetime=timedelta(days=data["expires_in_days"]),
            created_by=request.user,
        )
        # The admin goes on with `obj` (log entry, response): make it the issued row.
        obj.__dict__.update(token.__dict__)
        obj._state.adding = False
        request._hive_token_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_hive_token_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "secret": secret,
            "title": "Token created",
        }
        response = TemplateResponse(request, "admin/coordination/apitoken/created.html", context)
        return response

    @admin.action(description="Revoke selected tokens (they stop working at once)")
    def revoke_tokens(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            try:
                token_revoke(token=token, by=request.user)
                revoked += 1
            except DomainError as exc:
                self.message_user(request, f"{token.name}: {exc.message}", messages.WARNING)
        skipped = queryset.count() - revoked
        note = f"; {skipped} already revoked" if skipped else ""
        self.message_user(request, f"Revoked {revoked} token(s){note}.", messages.SUCCESS)


# --- sign-in lockout (django-axes) -------------------------------------------------------------


class HiveAccessAttemptAdmin(AccessAttemptAdmin):
    """Axes' failed sign-in records, with an "Unlock" action that clears them."""

    actions = [*AccessAttemptAdmin.actions, "unlock"]

    @admin.action(description="Unlock the user names and addresses of the selected records")
    def unlock(self, request, queryset):
        # A lockout is by user name or by address: clear every failure of either, from anywhere.
        usernames = sorted({a.username for a in queryset if a.username})
        addresses = sorted({a.ip_address for a in queryset if a.ip_address})
        cleared = sum(AxesProxyHandler.reset_attempts(username=name) for name in usernames)
        cleared += sum(AxesProxyHandler.reset_attempts(ip_address=address) for address in addresses)
        unlocked = ", ".join([*usernames, *addresses]) or "nothing"
        self.message_user(
            request, f"Unlocked {unlocked} ({cleared} failed-attempt record(s) cleared).", messages.SUCCESS
        )


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, HiveAccessAttemptAdmin)
