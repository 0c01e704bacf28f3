"""API tokens: issue, revoke, and authenticate a presented secret (HTTP and WebSocket alike).

The secret is returned once by `token_issue` and never stored: the row keeps knox's SHA-512
digest and the secret's first characters to find it again. Revoking keeps the row (who
revoked it and when) so the token page and the admin still show what it was.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from hmac import compare_digest

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from knox.crypto import hash_token
from knox.settings import CONSTANTS

from agents.redaction import secret_values_remember

from ..exceptions import ConflictError, DomainError
from ..permissions import is_operator
from .models import ApiToken

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length
# A use is recorded at most this often per token, so reads do not each cost a write.
LAST_USED_PRECISION = timedelta(seconds=60)
MIN_LIFETIME = timedelta(minutes=1)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_LIFETIME = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)


class TokenRejected(Exception):
    """A presented secret does not authenticate; the message says why (unknown, revoked, expired…)."""


def default_lifetime() -> timedelta:
    return timedelta(days=settings.HIVE_TOKEN_TTL_DAYS)


def max_lifetime() -> timedelta:
    return timedelta(days=settings.HIVE_TOKEN_MAX_TTL_DAYS)


def parse_lifetime(text: str) -> timedelta:
    """A lifetime such as 30d, 12h, 90m or 2w as a timedelta; anything else is a ValueError saying why."""
    match = _LIFETIME.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a lifetime; use a positive number with m, h, d or w, e.g. 30d")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})


def describe_lifetime(lifetime: timedelta) -> str:
    """A lifetime in words: 90 days, 12 hours, 45 minutes."""
    seconds = int(lifetime.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def token_issue_errors(*, user, name: str, scope: str, lifetime: timedelta) -> dict[str, str]:
    """Field → reason for everything wrong with a token request (the one check; forms show these too)."""
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "required: say what the token is for, e.g. “CI bot”"
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = f"at most {NAME_MAX_LENGTH} characters"
    if scope not in ApiToken.Scope.values:
        errors["scope"] = f"must be one of: {', '.join(ApiToken.Scope.values)}"
    elif scope == ApiToken.Scope.OPERATE and not is_operator(user):
        errors["scope"] = f"{user.get_username()} has no operator rights, so the token can only read"
    if lifetime < MIN_LIFETIME:
        errors["expires"] = "at least one minute"
    elif lifetime > max_lifetime():
        errors["expires"] = f"at most {settings.HIVE_TOKEN_MAX_TTL_DAYS} days (HIVE_TOKEN_MAX_TTL_DAYS)"
    if not user.is_active:
        errors["user"] = f"{user.get_username()} is inactive"
    return errors


def token_issue(
    *,
    user,
    name: str,
    scope: str = ApiToken.Scope.READ,
    lifetime: timedelta | None = None,
    created_by=None,
) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the secret, which is shown once and never kept.

    An operate-scoped token needs a user with operator rights; a token never outlives
    HIVE_TOKEN_MAX_TTL_DAYS.
    """
    name = (name or "").strip()
    lifetime = default_lifetime() if lifetime is None else lifetime
    errors = token_issue_errors(user=user, name=name, scope=scope, lifetime=lifetime)
    if errors:
        raise DomainError(errors=errors)
    by = created_by if created_by is not None and created_by.is_authenticated else None
    with transaction.atomic():
        token, secret = ApiToken.objects.create(user=user, expiry=lifetime, name=name, scope=scope, created_by=by)
        # This process never writes the secret into an event or a log line, even by mistake.
        secret_values_remember([secret])
    logger.info(
        "API token %r (%s) issued for %s by %s, expires %s",
        token.name,
        token.scope,
        user.get_username(),
        by.get_username() if by else "a command",
        token.expiry.isoformat(),
    )
    return token, secret


def token_revoke(*, token: ApiToken, by=None) -> ApiToken:
    """Stop a token from authenticating at once; the row stays for the record."""
    now = timezone.now()
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
        if locked.revoked_at is not None:
            raise ConflictError(f"token “{locked.name}” was already revoked")
        locked.revoked_at = now
        locked.revoked_by = by if by is not None and by.is_authenticated else None
        locked.save(update_fields=["revoked_at", "revoked_by"])
    logger.info(
        "API token %r of %s revoked by %s",
        locked.name,
        locked.user.get_username(),
        locked.revoked_by.get_username() if locked.revoked_by else "a command",
    )
    return locked


def token_authenticate(*, secret: str, now=None) -> ApiToken:
    """The usable token whose secret this is (its user loaded), recording the use; else TokenRejected."""
    now = now or timezone.now()
    secret = (secret or "").strip()
    if not secret:
        raise TokenRejected("Invalid token.")
    digest = hash_token(secret)
    candidates = ApiToken.objects.filter(token_key=secret[: CONSTANTS.TOKEN_KEY_LENGTH]).select_related("user")
    token = next((c for c in candidates if compare_digest(digest, c.digest)), None)
    if token is None:
        raise TokenRejected("Invalid token.")
    if token.revoked_at is not None:
        raise TokenRejected(f"Token “{token.name}” was revoked.")
    if token.expiry is not None and token.expiry <= now:
        raise TokenRejected(f"Token “{token.name}” expired on {token.expiry:%Y-%m-%d %H:%M} UTC.")
    if not token.user.is_active:
        raise TokenRejected("User inactive or deleted.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_still_valid(*, token: ApiToken, now=None) -> bool:
    """Whether a token accepted earlier (an open socket's) may still act: not revoked, not expired, user active."""
    now = now or timezone.now()
    return ApiToken.objects.usable(now=now).filter(pk=token.pk, user__is_active=True).exists()
