"""`manage.py validate_hive`: a bounded crew run under injected faults, measured and recorded."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from coordination.exceptions import DomainError
from metrics.models import ValidationRun
from metrics.validation import records, report
from metrics.validation.faults import FAULTS
from metrics.validation.runner import RunError, Runner, RunOptions

EXIT_MISSED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def require_migrated_database() -> None:
    """A clear message instead of a traceback when the schema is missing or behind."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"cannot reach the database: {exc}", returncode=EXIT_ERROR) from exc
    if pending:
        raise CommandError(
            f"the database has {len(pending)} unapplied migration(s); run `python manage.py migrate` first",
            returncode=EXIT_ERROR,
        )


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: end the run, record it as cancelled."""


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


class Command(BaseCommand):
    help = (
        "Run a crew for a bounded time under injected faults (kill, term, db, redis, agent) with two or more "
        "coordinator daemons and a web server as real processes; report coordination success, the exactly-once "
        "checks, reclaim times, handoff latency and event completeness over a WebSocket; record the run. "
        "Exits 1 when a threshold is missed, 2 when the run could not be carried out."
    )

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=float, default=10.0, help="How long work is submitted (default 10).")
        parser.add_argument(
            "--workflows", type=int, default=0, help="Submit at most this many workflows (default 0: no limit)."
        )
        parser.add_argument("--team", default="", help="Team file whose crew and backlog to run (default: demo crew).")
        parser.add_argument(
            "--faults", default="", help=f"Comma-separated faults to inject: {', '.join(FAULTS)} (default none)."
        )
        parser.add_argument(
            "--sandbox", action="store_true", help="Run in a throwaway SQLite database, then delete it."
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--daemons", type=int, default=2, help="Coordinator daemons to start (default 2).")
        parser.add_argument("--concurrent", type=int, default=3, help="Workflows kept open at once (default 3).")
        parser.add_argument(
            "--min-success", type=float, default=0.95, help="Lowest coordination success that passes (default 0.95)."
        )
        parser.add_argument(
            "--min-events", type=float, default=1.0, help="Share of events the WebSocket must see (default 1.0)."
        )
        parser.add_argument("--lease-seconds", type=int, default=None, help="HIVE_LEASE_SECONDS for the daemons.")
        parser.add_argument(
            "--heartbeat-timeout", type=int, default=None, help="HIVE_HEARTBEAT_TIMEOUT for the daemons."
        )
        parser.add_argument(
            "--agent-timeout",
            type=float,
            default=20.0,
            help="Timeout (s) of the agent the agent fault hangs, at most its own (default 20).",
        )
        parser.add_argument(
            "--drain",
            type=float,
            default=180.0,
            help="Seconds open work may finish after the time is up (default 180).",
        )
        parser.add_argument(
            "--fault-interval", type=float, default=60.0, help="Seconds between faults, cycling the list (default 60)."
        )
        parser.add_argument("--grace", type=float, default=10.0, help="Daemons' --grace on stop (default 10).")
        parser.add_argument("--record", type=int, default=None, help=argparse.SUPPRESS)  # row made by the console
        parser.add_argument("--sandbox-child", default="", help=argparse.SUPPRESS)  # the sandbox's own process
        parser.add_argument("--label", default="", help=argparse.SUPPRESS)

    # --- options ---------------------------------------------------------------------------

    def _run_options(self, options: dict[str, Any]) -> RunOptions:
        faults = [f.strip() for f in options["faults"].split(",") if f.strip()]
        unknown = [f for f in faults if f not in FAULTS]
        problems = []
        if unknown:
            problems.append(f"--faults: unknown {unknown[0]!r}; choose from {', '.join(FAULTS)}")
        if not 0 < options["minutes"] <= 24 * 60:
            problems.append("--minutes must be more than 0 and at most 1440")
        if options["workflows"] < 0:
            problems.append("--workflows cannot be negative")
        if not 1 <= options["daemons"] <= 16:
            problems.append("--daemons must be between 1 and 16")
        if options["daemons"] < 2 and {"kill", "term"} & set(faults):
            problems.append("the kill and term faults need --daemons 2 or more")
        if not 1 <= options["concurrent"] <= 100:
            problems.append("--concurrent must be between 1 and 100")
        for name in ("min_success", "min_events"):
            if not 0 <= options[name] <= 1:
                problems.append(f"--{name.replace('_', '-')} is a share between 0 and 1")
        for name in ("lease_seconds", "heartbeat_timeout"):
            if options[name] is not None and options[name] < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if options["agent_timeout"] < 1 or options["drain"] < 0 or options["fault_interval"] < 0:
            problems.append("--agent-timeout must be at least 1; --drain and --fault-interval cannot be negative")
        if options["team"] and not Path(options["team"]).is_file():
            problems.append(f"--team: no such file {options['team']}")
        if "db" in faults and (options["sandbox"] or options["sandbox_child"]):
            problems.append("the db fault cuts PostgreSQL connections; a --sandbox runs on SQLite (leave out db)")
        if problems:
            raise CommandError("; ".join(problems), returncode=EXIT_ERROR)
        return RunOptions(
            minutes=options["minutes"],
            workflows=options["workflows"],
            team=str(Path(options["team"]).resolve()) if options["team"] else "",
            faults=list(dict.fromkeys(faults)),
            daemons=options["daemons"],
            concurrent=options["concurrent"],
            min_success=options["min_success"],
            min_events=options["min_events"],
            lease_seconds=options["lease_seconds"],
            heartbeat_timeout=options["heartbeat_timeout"],
            agent_timeout=options["agent_timeout"],
            drain=options["drain"],
            fault_interval=options["fault_interval"],
            grace=options["grace"],
        )

    @staticmethod
    def _child_argv(run_options: RunOptions) -> list[str]:
        argv = []
        for name, value in run_options.as_dict().items():
            if value is None or value == "" or value == []:
                continue
            flag = "--" + name.replace("_", "-")
            argv += [flag, ",".join(value) if isinstance(value, list) else str(value)]
        return argv

    # --- entry ------------------------------------------------------------------------------

    def handle(self, *args, **options):
        run_options = self._run_options(options)
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if options["sandbox_child"]:
                return self._sandbox_child(Path(options["sandbox_child"]), options["label"], run_options)
            return self._main(options, run_options)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _say(self, options, message: str) -> None:
        if options["verbosity"] and not options["json"]:
            self.stdout.write(message)

    def _main(self, options: dict[str, Any], run_options: RunOptions) -> None:
        require_migrated_database()
        sandbox = options["sandbox"]
        where = (
            {
                "database": "SQLite (throwaway)",
                "channel_layer": "in-process" + (" + own Redis" if "redis" in run_options.faults else ""),
            }
            if sandbox
            else {
                "database": f"{connection.vendor} {connection.settings_dict['NAME']}",
                "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
                + (" (own Redis for the redis fault)" if "redis" in run_options.faults else ""),
            }
        )
        info = {**run_options.as_dict(), **where, "sandbox": sandbox}
        record = None
        if options["record"] is not None:
            record = ValidationRun.objects.filter(pk=options["record"], status=ValidationRun.Status.RUNNING).first()
            if record is None:
                raise CommandError(f"validation #{options['record']} is not waiting to run", returncode=EXIT_ERROR)
        try:
            run = records.validation_run_start(
                crew=f"team file {run_options.team}" if run_options.team else "demo crew",
                faults=run_options.faults,
                options=info,
                sandbox=sandbox,
                command="manage.py validate_hive " + " ".join(sys.argv[2:]),
                user=record.started_by if record else None,
                run=record,
            )
        except DomainError as exc:
            raise CommandError(exc.message, returncode=EXIT_ERROR) from exc
        self._say(options, f"Validation #{run.pk}: {info['database']}, {info['channel_layer']}")

        def progress(message: str, data: dict) -> None:
            records.validation_run_progress(run=run, message=message, data=data)
            self._say(options, f"[#{run.pk}] {message}")

        try:
            figures = (
                self._sandbox(run, run_options, progress) if sandbox else self._in_place(run, run_options, progress)
            )
        except Interrupted as exc:
            records.validation_run_finish(
                run=run,
                status=ValidationRun.Status.CANCELLED,
                figures={},
                failed_checks=[],
                error=f"interrupted ({exc})",
            )
            raise CommandError(
                f"validation #{run.pk} interrupted; every process it started was ended", returncode=EXIT_INTERRUPTED
            ) from exc
        except (RunError, DomainError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            records.validation_run_finish(
                run=run, status=ValidationRun.Status.ERROR, figures={}, failed_checks=[], error=message
            )
            raise CommandError(f"validation #{run.pk} could not run: {message}", returncode=EXIT_ERROR) from exc
        except BaseException as exc:
            records.validation_run_finish(
                run=run, status=ValidationRun.Status.ERROR, figures={}, failed_checks=[], error=repr(exc)
            )
            raise
        failed = report.evaluate(figures, min_success=run_options.min_success, min_events=run_options.min_events)
        status = ValidationRun.Status.FAILED if failed else ValidationRun.Status.PASSED
        records.validation_run_finish(run=run, status=status, figures=figures, failed_checks=failed)
        if options["json"]:
            payload = {
                "validation": run.pk,
                "status": status,
                "failed_checks": failed,
                "options": info,
                "figures": figures,
            }
            self.stdout.write(json.dumps(payload, cls=DjangoJSONEncoder, indent=2))
        elif options["verbosity"]:
            self.stdout.write(report.render(figures=figures, failed=failed, options=info, status=status))
        if failed:
            sys.exit(EXIT_MISSED)

    # --- where the run happens ------------------------------------------------------------------

    def _in_place(self, run: ValidationRun, run_options: RunOptions, progress) -> dict[str, Any]:
        root = Path(settings.HIVE["WORKSPACE_ROOT"]) / f"validation-{run.pk}"
        return Runner(options=run_options, label=str(run.pk), root=root, progress=progress).execute()

    def _sandbox(self, run: ValidationRun, run_options: RunOptions, progress) -> dict[str, Any]:
        """Re-run this command in a throwaway SQLite database; mirror its progress; delete it all after."""
        sandbox = Path(tempfile.mkdtemp(prefix=f"hive-validate-{run.pk}-"))
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{sandbox / 'hive.sqlite3'}",
            "REDIS_URL": "",
            "HIVE_WORKSPACE_ROOT": str(sandbox / "workspaces"),
            "HIVE_WORKSPACE_ROOTS": str(sandbox / "workspaces"),
            "HIVE_TEAM_CONFIG": "",
            "PYTHONUNBUFFERED": "1",
        }
        argv = [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "validate_hive",
            "--sandbox-child",
            str(sandbox),
            "--label",
            str(run.pk),
            *self._child_argv(run_options),
        ]
        progress_file, result_file = sandbox / "progress.jsonl", sandbox / "report.json"
        child = None
        try:
            with open(sandbox / "child.log", "wb") as log:
                child = subprocess.Popen(
                    argv, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            read = 0
            while True:
                running = child.poll() is None
                read = self._mirror(progress_file, read, progress)
                if not running:
                    break
                time.sleep(0.5)
            if not result_file.exists():
                tail = (sandbox / "child.log").read_text(errors="replace")[-3000:]
                raise RunError(f"the sandbox run ended ({child.returncode}) without a report:\n{tail}")
            result = json.loads(result_file.read_text())
            if "error" in result:
                raise RunError(result["error"])
            if result.get("interrupted"):
                raise Interrupted("sandbox run interrupted")
            return result["figures"]
        finally:
            if child is not None and child.poll() is None:
                # Interrupted here: let the sandbox run end its own processes, then make sure it is gone.
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=run_options.grace + 90)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            shutil.rmtree(sandbox, ignore_errors=True)

    @staticmethod
    def _mirror(path: Path, offset: int, progress) -> int:
        if not path.exists():
            return offset
        with open(path, encoding="utf-8") as handle:
            handle.seek(offset)
            while line := handle.readline():
                if not line.endswith("\n"):
                    break  # half-written; read it next time
                offset += len(line.encode("utf-8"))
                entry = json.loads(line)
                progress(entry["message"], entry["data"])
        return offset

    def _sandbox_child(self, sandbox: Path, label: str, run_options: RunOptions) -> None:
        """Inside the sandbox: migrate its database, run, and leave the figures for the parent."""
        result_file = sandbox / "report.json"
        progress_file = sandbox / "progress.jsonl"

        def progress(message: str, data: dict) -> None:
            with open(progress_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"message": message, "data": data}, cls=DjangoJSONEncoder) + "\n")

        def result(payload: dict) -> None:
            tmp = result_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload, cls=DjangoJSONEncoder))
            tmp.replace(result_file)

        try:
            call_command("migrate", verbosity=0, interactive=False)
            figures = Runner(options=run_options, label=label, root=sandbox / "run", progress=progress).execute()
        except (RunError, DomainError) as exc:
            result({"error": getattr(exc, "message", None) or str(exc)})
            sys.exit(EXIT_ERROR)
        except Interrupted:
            result({"interrupted": True})
            sys.exit(EXIT_INTERRUPTED)
        result({"figures": figures})
