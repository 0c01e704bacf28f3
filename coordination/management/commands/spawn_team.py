from __future__ import annotations

from django.core.management.base import BaseCommand

from coordination.actors import acting
from coordination.exceptions import DomainError
from coordination.management.base import add_actor_argument, command_actor, refusal, require_migrated_database
from coordination.teamfile import load_team_file, team_spawn_from_config


class Command(BaseCommand):
    help = "Spawn a team (a session with its agents and optional backlog) from a JSON config file."

    def add_arguments(self, parser):
        parser.add_argument("config", help="Path of the team config (see coordination/teamfile.py).")
        add_actor_argument(parser)

    def handle(self, *args, **options):
        require_migrated_database()
        actor, user = command_actor(options)
        try:
            with acting(actor):
                session = team_spawn_from_config(load_team_file(options["config"]), user=user)
        except DomainError as exc:
            raise refusal(exc) from None
        agents = ", ".join(f"{a.name} ({a.runtime})" for a in session.agents.all())
        self.stdout.write(self.style.SUCCESS(f"Session {session.pk} “{session.name}” spawned: {agents}"))
