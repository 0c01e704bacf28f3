"""Writing validation runs: the ValidationRun row and its events, in one transaction each.

Progress and the verdict go out on the live feed as `validation_started`,
`validation_progress` and `validation_finished` events (no session: the global feed).
A row whose process vanished without a report is closed as an error before a new run starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from coordination.events import EventDraft, event_record
from coordination.exceptions import ConflictError, DomainError
from coordination.models import CoordinationEvent

from ..models import ValidationRun

E = CoordinationEvent.Type
# A running row without progress for this long belongs to a run that is gone.
STALE_AFTER = timedelta(minutes=5)
SANDBOX_FAULTS = ("kill", "term", "redis", "agent")
MAX_CONSOLE_MINUTES = 30


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def validation_runs_close_abandoned(*, now=None) -> int:
    """Close running rows whose process is gone (same host) or that went silent."""
    now = now or timezone.now()
    host = socket.gethostname()
    closed = 0
    for run in ValidationRun.objects.filter(status=ValidationRun.Status.RUNNING):
        gone = (run.host == host and not _pid_alive(run.pid)) or run.heartbeat_at < now - STALE_AFTER
        if gone:
            closed += (
                validation_run_finish(
                    run=run,
                    status=ValidationRun.Status.ERROR,
                    figures=run.figures,
                    failed_checks=[],
                    error="the run's process ended without a report",
                    now=now,
                )
                is not None
            )
    return closed


def validation_run_start(
    *,
    crew: str,
    faults: list[str],
    options: dict[str, Any],
    sandbox: bool,
    command: str,
    user=None,
    run: ValidationRun | None = None,
) -> ValidationRun:
    """Open a run (or take over the row the console created for it); one runs at a time."""
    now = timezone.now()
    if run is None:
        validation_runs_close_abandoned(now=now)
    try:
        with transaction.atomic():
            if run is None:
                run = ValidationRun.objects.create(
                    crew=crew[:200], faults=faults, options=options, sandbox=sandbox, started_by=user, started_at=now
                )
            run.crew, run.faults, run.options, run.sandbox = crew[:200], faults, options, sandbox
            run.command, run.host, run.pid, run.heartbeat_at = command[:500], socket.gethostname(), os.getpid(), now
            run.save(update_fields=["crew", "faults", "options", "sandbox", "command", "host", "pid", "heartbeat_at"])
            event_record(
                EventDraft(
                    type=E.VALIDATION_STARTED,
                    message=f"Validation #{run.pk} started: {crew}, faults {', '.join(faults) or 'none'}"
                    + (" (sandbox)" if sandbox else ""),
                    collaboration_data={"validation": run.pk, "faults": faults, "sandbox": sandbox},
                ),
                now=now,
            )
    except IntegrityError as exc:
        running = ValidationRun.objects.filter(status=ValidationRun.Status.RUNNING).first()
        raise ConflictError(
            f"validation #{running.pk if running else '?'} is still running; one run at a time", field="validation"
        ) from exc
    return run


def validation_run_progress(*, run: ValidationRun, message: str, data: dict[str, Any] | None = None) -> None:
    now = timezone.now()
    with transaction.atomic():
        ValidationRun.objects.filter(pk=run.pk).update(progress=message[:300], heartbeat_at=now)
        event_record(
            EventDraft(
                type=E.VALIDATION_PROGRESS,
                message=f"Validation #{run.pk}: {message}",
                collaboration_data={"validation": run.pk, **_jsonable(data or {})},
            ),
            now=now,
        )


def validation_run_finish(
    *,
    run: ValidationRun,
    status: str,
    figures: dict[str, Any],
    failed_checks: list[str],
    error: str = "",
    now=None,
) -> ValidationRun | None:
    """Record the verdict; None when the run was already closed."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            ValidationRun.objects.select_for_update().filter(pk=run.pk, status=ValidationRun.Status.RUNNING).first()
        )
        if locked is None:
            return None
        locked.status, locked.figures, locked.failed_checks = status, _jsonable(figures), failed_checks
        locked.error, locked.finished_at, locked.heartbeat_at = error[:5000], now, now
        locked.progress = {"passed": "passed", "failed": "failed: " + ", ".join(failed_checks)}.get(
            status, error[:300] or status
        )[:300]
        locked.save(
            update_fields=["status", "figures", "failed_checks", "error", "finished_at", "heartbeat_at", "progress"]
        )
        success = (figures.get("coordination_success") or {}).get("ratio")
        event_record(
            EventDraft(
                type=E.VALIDATION_FINISHED,
                message=f"Validation #{run.pk} {locked.get_status_display().lower()}"
                + (f": coordination success {success * 100:.1f} %" if success is not None else "")
                + (f"; missed {', '.join(failed_checks)}" if failed_checks else ""),
                collaboration_data={
                    "validation": run.pk,
                    "status": status,
                    "failed_checks": failed_checks,
                    "coordination_success": success,
                },
            ),
            now=now,
        )
    return locked


def validation_sandbox_launch(*, user, minutes: float, faults: list[str], workflows: int = 0) -> ValidationRun:
    """Start `validate_hive --sandbox` as a background process for an operator (console, API).

    The row exists before the process does, so the page shows the run at once; the
    command takes it over and records the verdict.
    """
    errors = {}
    if not 0 < minutes <= MAX_CONSOLE_MINUTES:
        errors["minutes"] = f"between 0 and {MAX_CONSOLE_MINUTES} minutes"
    unknown = [f for f in faults if f not in SANDBOX_FAULTS]
    if unknown:
        errors["faults"] = f"{unknown[0]!r} cannot run in a sandbox; choose from {', '.join(SANDBOX_FAULTS)}" + (
            " (db needs PostgreSQL: run validate_hive on the command line)" if "db" in unknown else ""
        )
    if workflows < 0:
        errors["workflows"] = "0 (as many as fit) or more"
    if errors:
        raise DomainError(errors=errors)
    faults = [f for f in SANDBOX_FAULTS if f in faults]
    options = {"minutes": minutes, "faults": faults, "workflows": workflows, "sandbox": True}
    run = validation_run_start(
        crew="demo crew", faults=faults, options=options, sandbox=True, command="(starting)", user=user
    )
    logs = Path(settings.BASE_DIR) / "var" / "validation"
    logs.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        str(Path(settings.BASE_DIR) / "manage.py"),
        "validate_hive",
        "--sandbox",
        "--record",
        str(run.pk),
        "--minutes",
        str(minutes),
        "--workflows",
        str(workflows),
        "--faults",
        ",".join(faults),
    ]
    pid = launch_process(argv, log=logs / f"run-{run.pk}.log")
    ValidationRun.objects.filter(pk=run.pk).update(pid=pid, command=" ".join(argv[1:])[:500])
    run.refresh_from_db()
    return run


def launch_process(argv: list[str], *, log: Path) -> int:
    """Start the run in the background; returns its pid."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the request; its own group, so it ends its children itself
        )
    return process.pid


def _jsonable(value):
    """Datetimes and other non-JSON values as strings (figures are stored as JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
