"""Set up the demo crew on a real sample repository, and keep feeding it work."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from coordination.actors import acting
from coordination.demo import demo_ensure, demo_name, feed_next
from coordination.exceptions import DomainError
from coordination.management.base import add_actor_argument, command_actor, require_migrated_database
from coordination.models import Session


class Command(BaseCommand):
    help = (
        "Create (or reuse) the demo session: a git repository made from the shop sample project and a "
        "crew whose tester runs pytest, reviewer runs pyflakes and devops builds a zipapp for real "
        "(developer, product manager and architect are scripted and labelled simulated). Writes the "
        "team config for run_coordinator --team. With --feed, stays running and submits the next "
        "piece of work whenever the crew has nothing running, until SIGTERM/SIGINT."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--config-out",
            default="",
            help="Where to write the filled-in team config (default: <HIVE_WORKSPACE_ROOT>/demo-team.json).",
        )
        parser.add_argument(
            "--python", default=sys.executable, help="Interpreter the crew's commands run (default: this one)."
        )
        parser.add_argument("--feed", action="store_true", help="Keep submitting work while the crew is idle.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between feed checks (default 2).")
        parser.add_argument(
            "--idle-pause", type=float, default=5.0, help="Seconds the crew rests between pieces of work (default 5)."
        )
        add_actor_argument(parser)

    def handle(self, *args, **options):
        require_migrated_database()
        actor, _ = command_actor(options)
        with acting(actor):
            return self._handle(options)

    def _handle(self, options):
        if options["feed"]:
            return self.feed(
                interval=options["interval"], idle_pause=options["idle_pause"], verbosity=options["verbosity"]
            )
        try:
            session, config, created = demo_ensure(python=options["python"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        out = Path(options["config_out"] or Path(settings.HIVE["WORKSPACE_ROOT"]) / "demo-team.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        verb = "Created" if created else "Reusing"
        if options["verbosity"]:
            self.stdout.write(
                self.style.SUCCESS(f"{verb} demo session {session.pk} “{session.name}” in {session.workspace}")
            )
            self.stdout.write(f"Team config: {out}")

    def feed(self, *, interval: float, idle_pause: float, verbosity: int) -> None:
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        name = demo_name()
        try:
            while not stop.is_set():
                close_old_connections()
                try:
                    session = Session.objects.filter(name=name, status=Session.Status.ACTIVE).first()
                    workflow = feed_next(session=session, idle_pause=idle_pause) if session else None
                except DomainError as exc:
                    self.stderr.write(f"demo feed: {exc.message}")
                    workflow = None
                if workflow is not None and verbosity:
                    self.stdout.write(f"Demo feed: submitted “{workflow.title}” ({workflow.pattern})")
                stop.wait(interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
