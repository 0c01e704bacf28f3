"""Issue an API token for a user (the PWA, scripts, CI, Prometheus) and print its secret once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from coordination.access.services import (
    default_lifetime,
    describe_lifetime,
    parse_lifetime,
    token_issue,
    token_revoke,
)
from coordination.actors import acting
from coordination.exceptions import DomainError
from coordination.management.base import add_actor_argument, command_actor, require_migrated_database
from coordination.models import ApiToken
from coordination.permissions import is_operator

DEFAULT_NAME = "API token"


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print its secret (only this once: the server keeps a hash). "
        "Send it as `Authorization: Token <secret>`. --rotate first revokes the user's tokens of the same name."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--scope",
            choices=ApiToken.Scope.values,
            help="read, or operate (read and write; needs operator rights). Default: operate for operators, else read.",
        )
        parser.add_argument(
            "--expires",
            metavar="LIFETIME",
            help="How long the token works: 30d, 12h, 90m, 2w (default: HIVE_TOKEN_TTL_DAYS, 90 days).",
        )
        parser.add_argument("--name", default=DEFAULT_NAME, help=f"What the token is for (default {DEFAULT_NAME!r}).")
        parser.add_argument(
            "--rotate", action="store_true", help="Revoke the user's tokens with this name (they stop working at once)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; change nothing.")
        add_actor_argument(parser)

    def handle(self, *args, username: str, scope, expires, name: str, rotate: bool, dry_run: bool, **options):
        require_migrated_database()
        actor, by = command_actor(options)
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        try:
            lifetime = parse_lifetime(expires) if expires else default_lifetime()
        except ValueError as exc:
            raise CommandError(f"--expires: {exc}") from None
        scope = scope or (ApiToken.Scope.OPERATE if is_operator(user) else ApiToken.Scope.READ)
        replaced = []
        if rotate:
            replaced = list(ApiToken.objects.usable(now=timezone.now()).filter(user=user, name=name.strip()))
        if dry_run:
            lasts = describe_lifetime(lifetime)
            what = f"would create token {name!r} for {username} (scope {scope}, expires in {lasts})"
            if replaced:
                what += f", and revoke {len(replaced)} token(s) of that name"
            self.stdout.write(what)
            return
        try:
            with acting(actor), transaction.atomic():
                for old in replaced:
                    token_revoke(token=old, by=by)
                token, secret = token_issue(user=user, name=name, scope=scope, lifetime=lifetime, created_by=by)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if options["verbosity"] >= 1:
            rotated = f"; revoked {len(replaced)} older token(s) of that name" if replaced else ""
            self.stderr.write(
                f"Token {token.name!r} for {username}: scope {token.scope}, expires {token.expiry:%Y-%m-%d %H:%M} UTC"
                f"{rotated}. The secret below is shown only now."
            )
        self.stdout.write(secret)
