"""Issue or rotate the API token of a user (for the PWA, scripts and Prometheus)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from coordination.management.base import require_migrated_database
from coordination.permissions import is_operator


class Command(BaseCommand):
    help = (
        "Print the API token of USERNAME, creating it if needed; --rotate replaces an existing token "
        "(the old one stops working at once). Send it as `Authorization: Token <key>`."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="Replace the user's token with a new one.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; change nothing.")

    def handle(self, *args, username: str, rotate: bool, dry_run: bool, **options):
        require_migrated_database()
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        existing = Token.objects.filter(user=user).first()
        if dry_run:
            action = "rotate" if existing and rotate else ("keep" if existing else "create")
            self.stdout.write(f"would {action} the token of {username}")
            return
        with transaction.atomic():
            if existing and rotate:
                existing.delete()
                existing = None
            token = existing or Token.objects.create(user=user)
        if options["verbosity"] >= 2:
            rights = "operator (read and write)" if is_operator(user) else "viewer (read only)"
            self.stderr.write(f"{'rotated' if rotate else 'token'} for {username}, {rights}")
        self.stdout.write(token.key)
