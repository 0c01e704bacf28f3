"""API tokens for benchmark clients (call after django.setup())."""

from __future__ import annotations

NAME = "benchmark"


def fresh_token(user, *, scope: str = "read") -> str:
    """A new token for this run (only its hash is stored, so none can be read back); older ones are revoked."""
    from django.utils import timezone

    from coordination.access.services import token_issue, token_revoke
    from coordination.models import ApiToken

    for old in ApiToken.objects.usable(now=timezone.now()).filter(user=user, name=NAME):
        token_revoke(token=old)
    return token_issue(user=user, name=NAME, scope=scope)[1]
