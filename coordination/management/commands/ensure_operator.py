"""Make sure an operator can sign in: create one when there is none and say how to log in."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from coordination.management.base import require_migrated_database
from coordination.permissions import OPERATORS_GROUP


def credentials_path() -> Path:
    default = Path(settings.BASE_DIR) / "var" / "operator-credentials.txt"
    return Path(os.environ.get("HIVE_CREDENTIALS_FILE") or default)


class Command(BaseCommand):
    help = (
        "Create an operator login (superuser, in the operators group) if no superuser exists, with the "
        "password from HIVE_OPERATOR_PASSWORD or a generated one, and write it to "
        "var/operator-credentials.txt (mode 600; HIVE_CREDENTIALS_FILE overrides the path). With "
        "HIVE_OPERATOR_PASSWORD set, an existing operator of that name gets that password."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator", help="Login name of the operator (default operator).")

    def handle(self, *args, **options):
        require_migrated_database()
        username = options["username"].strip()
        if not username:
            raise CommandError("--username cannot be empty")
        wanted = os.environ.get("HIVE_OPERATOR_PASSWORD", "")
        path = credentials_path()
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.filter(username=username).first()
            if user is None and User.objects.filter(is_superuser=True).exists():
                existing = User.objects.filter(is_superuser=True).order_by("pk").first()
                self.stdout.write(f"Operator login exists: {existing.get_username()}" + self._where(path))
                return
            password = wanted or secrets.token_urlsafe(12)
            if user is None:
                user = User.objects.create_superuser(username=username, email="", password=password)
                action = "Created operator login"
            elif wanted and not user.check_password(wanted):
                user.set_password(wanted)
                user.save(update_fields=["password"])
                action = "Set the password of operator login"
            else:
                self.stdout.write(f"Operator login exists: {username}" + self._where(path))
                return
            user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
        self._write(path, username, password)
        self.stdout.write(self.style.SUCCESS(f"{action}: {username} / {password}"))
        self.stdout.write(f"(also written to {path}, readable only by you)")

    @staticmethod
    def _where(path: Path) -> str:
        return f" (password in {path})" if path.is_file() else ""

    @staticmethod
    def _write(path: Path, username: str, password: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 600 from the start, so the password is never readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"username={username}\npassword={password}\n")
        os.chmod(path, 0o600)
