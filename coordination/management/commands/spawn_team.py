from __future__ import annotations

from django.core.management.base import BaseCommand

from coordination.exceptions import DomainError
from coordination.management.base import refusal, require_migrated_database
from coordination.teamfile import load_team_file, team_spawn_from_config


class Command(BaseCommand):
    help = "Spawn a team (a session with its agents and optional backlog) from a JSON config file."

    def add_arguments(self, parser):
        parser.add_argument("config", help="Path of the team config (see coordination/teamfile.py).")

    def handle(self, *args, **options):
        require_migrated_database()
        try:
            session = team_spawn_from_config(load_team_file(options["config"]))
        except DomainError as exc:
            raise refusal(exc) from None
        agents = ", ".join(f"{a.name} ({a.runtime})" for a in session.agents.all())
        self.stdout.write(self.style.SUCCESS(f"Session {session.pk} “{session.name}” spawned: {agents}"))
