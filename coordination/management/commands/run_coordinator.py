"""The coordinator daemon: keeps the crew working until SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from coordination.actors import acting
from coordination.engine import Engine, switch_enabled
from coordination.exceptions import DomainError
from coordination.management.base import require_migrated_database
from coordination.teamfile import load_team_file, team_ensure

AUTOSPAWN_SWITCH = "autospawn_team"


class Command(BaseCommand):
    help = (
        "Run the coordinator: claim ready tasks, run agents' runtimes in a worker pool, "
        "apply pattern transitions, reclaim dead work and raise decisions. Stops cleanly "
        "on SIGTERM/SIGINT, handing in-flight work back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one tick, wait for its work, then exit.")
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between idle ticks (default 0.5).")
        parser.add_argument("--concurrency", type=int, default=4, help="Runtimes run at once (default 4).")
        parser.add_argument(
            "--claim-batch", type=int, default=None, help="Tasks leased at once (default: the concurrency)."
        )
        parser.add_argument(
            "--team",
            default=settings.HIVE["TEAM_CONFIG"],
            help="Team config (JSON) spawned at start-up if no active session of that name exists "
            "(default: HIVE_TEAM_CONFIG).",
        )
        parser.add_argument("--no-autospawn", action="store_true", help="Do not spawn the configured team.")
        parser.add_argument(
            "--grace", type=float, default=10.0, help="Seconds running work may finish after a stop signal."
        )
        parser.add_argument("--name", default="", help="Name of this coordinator instance (default host:pid).")

    def handle(self, *args, **options):
        if options["interval"] <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        if not 1 <= options["concurrency"] <= 256:
            raise CommandError("--concurrency must be between 1 and 256")
        if options["claim_batch"] is not None and options["claim_batch"] < 1:
            raise CommandError("--claim-batch must be at least 1")
        if options["grace"] < 0:
            raise CommandError("--grace cannot be negative")
        require_migrated_database()
        verbosity = options["verbosity"]

        if options["team"] and not options["no_autospawn"] and not switch_enabled(AUTOSPAWN_SWITCH, default=True):
            if verbosity:
                self.stdout.write(f"Not spawning the team: switch “{AUTOSPAWN_SWITCH}” is off.")
        elif options["team"] and not options["no_autospawn"]:
            try:
                # The team the daemon brings up is its own doing: recorded under the name it registers with.
                with acting(options["name"] or f"{socket.gethostname()}:{os.getpid()}"):
                    session, created = team_ensure(load_team_file(options["team"]))
            except DomainError as exc:
                raise CommandError(f"team config {options['team']}: {exc.message}") from exc
            if verbosity:
                verb = "Spawned" if created else "Resuming"
                self.stdout.write(f"{verb} team “{session.name}” (session {session.pk}) in {session.workspace}")

        stop = threading.Event()
        engine: Engine | None = None

        def request_stop(signum, frame):
            if stop.is_set() and engine is not None:
                engine.hurry.set()  # a second signal: hand back now, do not wait out the grace
            stop.set()
            if engine is not None:
                engine.wake.set()

        # Handlers go in before the daemon registers, so a stop signal is never a hard kill.
        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            engine = Engine(
                concurrency=options["concurrency"], claim_batch=options["claim_batch"], name=options["name"]
            )
            if verbosity:
                self.stdout.write(
                    f"Coordinator {engine.instance.name} running with {engine.concurrency} workers "
                    f"(lease {settings.HIVE['LEASE_SECONDS']} s). Ctrl-C to stop."
                )

            def on_tick(report):
                if verbosity >= 2 and report.busy:
                    self.stdout.write(
                        f"tick: claimed {report.claimed}, applied {report.applied}, reclaimed {report.reclaimed}, "
                        f"in flight {report.in_flight} ({report.duration_ms:.1f} ms)"
                    )

            try:
                if options["once"]:
                    on_tick(engine.tick())
                    engine.drain(timeout=options["grace"] or 60)
                    engine.tick()
                else:
                    engine.run(stop=stop, interval=options["interval"], on_tick=on_tick)
            finally:
                handed_back = engine.shutdown(
                    grace=0 if stop.is_set() and options["once"] else options["grace"],
                    reason="stopped by signal" if stop.is_set() else "finished",
                )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if verbosity:
            self.stdout.write(f"Coordinator stopped cleanly; {handed_back} task(s) handed back.")
