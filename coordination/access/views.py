"""The console's API token page: your tokens (all tokens for operators), create one, revoke one.

The secret is on the page that answers the create form and nowhere else: not stored, not
put in a message or the session, and the page is sent with `Cache-Control: no-store`.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from ..exceptions import DomainError
from ..forms import TokenCreateForm
from ..permissions import is_operator
from ..views import _page
from .models import ApiToken
from .services import token_issue, token_revoke


def _form(request, data=None) -> TokenCreateForm:
    return TokenCreateForm(
        data,
        default_days=settings.HIVE_TOKEN_TTL_DAYS,
        max_days=settings.HIVE_TOKEN_MAX_TTL_DAYS,
        can_operate=is_operator(request.user),
    )


def _rows(tokens, now) -> list[dict]:
    return [{"token": token, "state": token.state(now=now)} for token in tokens]


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    created = secret = None
    status = 200
    if request.method == "POST":
        form = _form(request, request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                created, secret = token_issue(
                    user=request.user,
                    name=data["name"],
                    scope=data["scope"],
                    lifetime=timedelta(days=data["expires"]),
                    created_by=request.user,
                )
            except DomainError as exc:
                form.add_domain_error(exc)
        if created is None:
            status = 400
        else:
            status = 201
            form = _form(request)
    else:
        form = _form(request)
    now = timezone.now()
    mine = ApiToken.objects.filter(user=request.user).select_related("created_by", "revoked_by")
    others = []
    if is_operator(request.user):
        others = ApiToken.objects.exclude(user=request.user).select_related("user", "revoked_by")[:500]
    context = {
        "form": form,
        "created": created,
        "secret": secret,
        "mine": _rows(mine, now),
        "others": _rows(others, now),
        "can_operate": is_operator(request.user),
    }
    # never_cache sends Cache-Control: no-store, so the page with the secret is kept nowhere.
    return _page(request, "console/tokens.html", context, status=status, nav="tokens")


@login_required
@require_POST
def token_revoke_view(request):
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=request.POST.get("token", ""))
    if token.user_id != request.user.pk and not is_operator(request.user):
        raise PermissionDenied("Only the token's owner or an operator may revoke it.")
    try:
        token_revoke(token=token, by=request.user)
    except DomainError as exc:
        messages.error(request, f"Not revoked: {exc.message}")
    else:
        messages.success(request, f"Token “{token.name}” of {token.user.get_username()} revoked; it no longer works.")
    return redirect("console:tokens")
