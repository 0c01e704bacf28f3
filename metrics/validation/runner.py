"""One validation run: a crew, its daemons and a web server as real processes, faults, and the figures.

The runner works against the default database (the configured one, or the sandbox's when
`validate_hive --sandbox` re-runs itself there). It starts daphne and two or more
`run_coordinator` daemons as subprocesses, follows the live feed with a WebSocket client,
submits work for `--minutes`, injects the faults on schedule, lets the open work finish,
stops the daemons cleanly and then measures. Every process it started is ended in a
`finally`, also on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from coordination.access.services import token_issue, token_revoke
from coordination.models import CoordinationEvent, CoordinatorInstance, Session, Task, TaskAttempt, Workflow
from coordination.services import session_set_status, work_submit

from .. import outcomes
from ..rollups import ATTEMPT_FAILED, ATTEMPT_SUCCEEDED
from ..selectors import handoff_latency
from ..totals import success
from . import faults as fault_kinds
from .crew import Crew, crew_create
from .feed import FeedWatcher
from .processes import Child, Processes, free_port, port_open, wait_until
from .repository import repository_side_effects

logger = logging.getLogger(__name__)

VALIDATION_USER = "validate-hive"
PROGRESS_EVERY_S = 10.0


class RunError(Exception):
    """The run could not be carried out (a process would not start, a fault needs what is missing)."""


@dataclass
class RunOptions:
    minutes: float = 10.0
    workflows: int = 0  # at most this many submitted (0: as many as the time allows)
    team: str = ""
    faults: list[str] = field(default_factory=list)
    daemons: int = 2
    concurrent: int = 3  # workflows kept open at once
    min_success: float = 0.95
    min_events: float = 1.0
    lease_seconds: int | None = None
    heartbeat_timeout: int | None = None
    agent_timeout: float = 20.0
    drain: float = 180.0
    fault_interval: float = 60.0
    grace: float = 10.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def database_url() -> str:
    """The default database as a DATABASE_URL for the children."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(s["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise RunError("the database is in memory; other processes cannot share it (use --sandbox)")
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor != "postgresql":
        raise RunError(f"validation runs support PostgreSQL and SQLite, not {connection.vendor}")
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"


class Runner:
    def __init__(self, *, options: RunOptions, label: str, root: Path, progress: Callable[[str, dict], None]):
        self.options = options
        self.label = label
        self.root = root
        self.progress = progress
        self.procs = Processes(cwd=Path(settings.BASE_DIR))
        self.daemons: list[Child] = []
        self.generations: list[int] = []
        self.redis: Child | None = None
        self.redis_port = 0
        self.web: Child | None = None
        self.feed: FeedWatcher | None = None
        self.crew: Crew | None = None
        self.token = None
        self.app_name_prefix = f"hive-validate-{label}-{os.getpid()}"
        self.agent_charges = root / "agent-charges.json"
        self.agent_log = root / "agent-faults.jsonl"
        self.agent_timeout = options.agent_timeout
        lease = options.lease_seconds or settings.HIVE["LEASE_SECONDS"]
        heartbeat = options.heartbeat_timeout or settings.HIVE["HEARTBEAT_TIMEOUT"]
        # A killed daemon's work must be reclaimed well within this, or the kill counts as not recovered.
        self.reclaim_budget_s = 3 * (lease + heartbeat) + 30
        self.faults: list[fault_kinds.Fault] = []
        self.submitted = 0
        self.unexpected_exits: list[dict[str, Any]] = []
        self.started_at = timezone.now()

    # --- the run ---------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        """Run and measure; returns the figures (see report.evaluate for the verdict)."""
        try:
            self._prepare()
            self._work()
            self._drain()
            self._stop_daemons()
            return self._measure()
        finally:
            self._cleanup()

    def _prepare(self) -> None:
        o = self.options
        if "db" in o.faults and connection.vendor != "postgresql":
            raise RunError("the db fault cuts PostgreSQL connections; it needs DATABASE_URL=postgres://…")
        if {"kill", "term"} & set(o.faults) and o.daemons < 2:
            raise RunError("kill and term faults need at least two daemons (--daemons 2)")
        self.root.mkdir(parents=True, exist_ok=True)
        agent_fault = (self.agent_charges, self.agent_log) if "agent" in o.faults else None
        self.crew = crew_create(
            run_label=self.label,
            # Inside the workspace root, where every session's workspace must be (HIVE_WORKSPACE_ROOTS).
            root=Path(settings.HIVE["WORKSPACE_ROOT"]) / f"validation-{self.label}" / "workspaces",
            team_file=o.team,
            agent_fault=agent_fault,
            agent_timeout=o.agent_timeout,
        )
        self.progress(
            f"crew “{self.crew.session.name}” ready in {self.crew.workspace}",
            {"session": self.crew.session.pk, "workspace": str(self.crew.workspace)},
        )
        if "redis" in o.faults:
            self.redis_port = free_port()
            self.redis = self.procs.start(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                env=dict(os.environ),
                log=self.root / "logs" / "redis.log",
            )
            self.wait_port(self.redis_port, what="redis-server")
        self._start_web()
        for slot in range(o.daemons):
            self.daemons.append(None)  # type: ignore[arg-type]
            self.generations.append(0)
            self.daemon_restart(slot, first=True)
        for child in self.daemons:
            self._wait_registered(child)
        self.progress(f"{o.daemons} daemons and daphne running", {"daemons": [c.name for c in self.daemons]})

    def _work(self) -> None:
        o = self.options
        run_s = o.minutes * 60
        self.faults = fault_kinds.schedule(o.faults, run_seconds=run_s, interval=o.fault_interval)
        start = time.monotonic()
        next_progress = start + PROGRESS_EVERY_S
        while (elapsed := time.monotonic() - start) < run_s:
            self._top_up()
            for fault in self.faults:
                if fault.injected_at is None and elapsed >= fault.at_s:
                    self.progress(f"injecting {fault.kind} at {elapsed:.0f} s", {"fault": fault.kind})
                    fault.inject(self)
                    self.progress(f"{fault.kind} injected", {"fault": fault.kind, **fault.data})
            self._poll_faults()
            self._watch_daemons()
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                self._report_progress(elapsed, run_s)
            time.sleep(0.5)

    def _drain(self) -> None:
        """Let open work finish (and pending fault measurements complete) before stopping."""
        deadline = time.monotonic() + self.options.drain
        self.progress("time is up: letting open work finish", self._counts())
        while time.monotonic() < deadline:
            self._poll_faults()
            self._watch_daemons()
            pending = [f for f in self.faults if f.injected_at is not None and not f.done]
            if not pending and not self._workflows().filter(status=Workflow.Status.RUNNING).exists():
                return
            time.sleep(0.5)

    def _stop_daemons(self) -> None:
        for child in self.daemons:
            code = self.procs.stop(child, grace=self.options.grace + 20)
            if code not in (0, None):
                self.unexpected_exits.append({"daemon": child.name, "exit_code": code, "when": "stopping"})
        for fault in self.faults:
            if fault.injected_at is not None and not fault.done:
                fault.poll(self)
                if not fault.done:
                    fault.expire()

    # --- measuring -----------------------------------------------------------------------

    def _measure(self) -> dict[str, Any]:
        session = self.crew.session
        tasks = Task.objects.filter(session=session)
        workflows = self._workflows()
        table_ids = list(CoordinationEvent.objects.filter(session=session).values_list("id", flat=True))
        if table_ids:
            self.feed.wait_for(max(table_ids), timeout=30)
        events = self.feed.compare(table_ids)
        live = set(
            CoordinatorInstance.objects.filter(status=CoordinatorInstance.Status.RUNNING).values_list("pk", flat=True)
        )
        for fault in self.faults:
            if isinstance(fault, fault_kinds.AgentFault):
                fault.settle()
        return {
            "crew": self.crew.label,
            "session": session.pk,
            "workspace": str(self.crew.workspace),
            "duration_s": round((timezone.now() - self.started_at).total_seconds(), 1),
            "workflows": {"submitted": self.submitted, **self._counts()},
            "coordination_success": outcomes.coordination_success(workflows, include_escalated=True),
            "exactly_once": {
                "duplicate_completions": outcomes.duplicate_completions(tasks),
                "tasks_assigned_twice": outcomes.tasks_assigned_twice(tasks),
                "tasks_lost": outcomes.tasks_lost(tasks, live_coordinator_ids=live),
                "repository": repository_side_effects(self.crew.workspace),
            },
            "reclaim": [f.outcome() for f in self.faults if f.kind == "kill" and f.injected_at],
            "faults": [f.outcome() for f in self.faults],
            "faults_not_injected": [f.kind for f in self.faults if f.injected_at is None],
            "handoff_latency": handoff_latency(start=None, tasks=tasks),
            "events": events,
            "tasks": {
                "total": tasks.count(),
                "completed": tasks.filter(status=Task.Status.COMPLETED).count(),
                "failed": tasks.filter(status=Task.Status.FAILED).count(),
                "attempts_over_one": tasks.filter(attempt__gt=1).count(),
            },
            # Failed attempts count even when a later attempt finished the task.
            "attempts": success(
                **TaskAttempt.objects.filter(task__in=tasks).aggregate(
                    succeeded=Count("pk", filter=Q(status=ATTEMPT_SUCCEEDED)),
                    failed=Count("pk", filter=Q(status__in=ATTEMPT_FAILED)),
                )
            ),
            "unexpected_exits": self.unexpected_exits,
            "orphans_left_running": self.procs.orphans_alive(),
            "definitions": outcomes.DEFINITIONS,
        }

    def _counts(self) -> dict[str, int]:
        success = outcomes.coordination_success(self._workflows(), include_escalated=True)
        return {
            "concluded": success["denominator"],
            "delivered_unaided": success["delivered_unaided"],
            "escalated": success["escalated"],
            "running": success["running"],
        }

    def _report_progress(self, elapsed: float, run_s: float) -> None:
        counts = self._counts()
        done = sum(1 for f in self.faults if f.done)
        self.progress(
            f"{elapsed / 60:.1f} of {run_s / 60:.1f} min: {self.submitted} workflows submitted, "
            f"{counts['concluded']} concluded ({counts['delivered_unaided']} without a human), "
            f"faults {done}/{len(self.faults)} measured",
            {"elapsed_s": round(elapsed, 1), "submitted": self.submitted, **counts},
        )

    # --- helpers the faults use ------------------------------------------------------------

    def _workflows(self):
        return Workflow.objects.filter(session=self.crew.session)

    def _top_up(self) -> None:
        o = self.options
        running = self._workflows().filter(status=Workflow.Status.RUNNING).count()
        while running < o.concurrent and (not o.workflows or self.submitted < o.workflows):
            work_submit(session=self.crew.session, work=self.crew.work(self.submitted))
            self.submitted += 1
            running += 1

    def _poll_faults(self) -> None:
        for fault in self.faults:
            if fault.injected_at is None or fault.done:
                continue
            fault.poll(self)
            if not fault.done and fault.deadline and time.monotonic() > fault.deadline:
                fault.expire()
            if fault.done:
                self.progress(f"{fault.kind} measured", {"fault": fault.kind, **fault.data})

    def _watch_daemons(self) -> None:
        for slot, child in enumerate(self.daemons):
            if not child.alive():
                code = child.popen.returncode
                self.unexpected_exits.append({"daemon": child.name, "exit_code": code, "when": "running"})
                self.progress(f"daemon {child.name} exited by itself ({code}); starting it again", {})
                self.daemon_restart(slot)

    def _env(self, *, app_name: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0" if self.redis else settings.REDIS_URL,
            "HIVE_TEAM_CONFIG": "",
            "PGAPPNAME": app_name,
            "PYTHONUNBUFFERED": "1",
        }
        if self.options.lease_seconds:
            env["HIVE_LEASE_SECONDS"] = str(self.options.lease_seconds)
        if self.options.heartbeat_timeout:
            env["HIVE_HEARTBEAT_TIMEOUT"] = str(self.options.heartbeat_timeout)
        return env

    def daemon_restart(self, slot: int, *, first: bool = False) -> Child:
        if not first:
            self.generations[slot] += 1
        name = f"validate-{self.label}-d{slot}" + (f"-r{self.generations[slot]}" if self.generations[slot] else "")
        child = self.procs.start(
            name,
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "run_coordinator",
                "--no-autospawn",
                "--name",
                name,
                "--interval",
                "0.2",
                "--grace",
                str(self.options.grace),
            ],
            env=self._env(app_name=f"{self.app_name_prefix}-d{slot}"),
            log=self.root / "logs" / f"daemon-{slot}.log",
        )
        self.daemons[slot] = child
        return child

    def instance_of(self, child: Child) -> CoordinatorInstance | None:
        return CoordinatorInstance.objects.filter(name=child.name, pid=child.pid).order_by("-started_at").first()

    def _wait_registered(self, child: Child) -> None:
        if not wait_until(lambda: not child.alive() or self.instance_of(child) is not None, timeout=90):
            raise RunError(f"daemon {child.name} did not start within 90 s (log: {child.log})")
        if not child.alive():
            raise RunError(f"daemon {child.name} exited at start ({child.popen.returncode}); log: {child.log}")

    def wait_port(self, port: int, *, what: str) -> None:
        if not wait_until(lambda: port_open(port), timeout=60):
            raise RunError(f"{what} did not listen on 127.0.0.1:{port} within 60 s")

    def _start_web(self) -> None:
        port = free_port()
        self.web = self.procs.start(
            "daphne",
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hive_project.asgi:application"],
            env=self._env(app_name=f"{self.app_name_prefix}-web"),
            log=self.root / "logs" / "daphne.log",
        )
        self.wait_port(port, what="daphne")
        user, created = get_user_model().objects.get_or_create(username=VALIDATION_USER)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        lifetime = timedelta(minutes=self.options.minutes, seconds=self.options.drain) + timedelta(hours=1)
        self.token, secret = token_issue(user=user, name=f"validation {self.label}", scope="read", lifetime=lifetime)
        self.feed = FeedWatcher(
            url=f"ws://127.0.0.1:{port}/ws/coordination/sessions/{self.crew.session.pk}/", token=secret
        )
        self.feed.start()

    def _cleanup(self) -> None:
        # A second Ctrl-C or SIGTERM must not cut the ending of the processes short.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.feed is not None:
                self.feed.stop()
            self.procs.end_all(grace=self.options.grace + 20)
            if self.token is not None:
                token_revoke(token=self.token)
            if self.crew is not None:
                session = Session.objects.get(pk=self.crew.session.pk)
                if session.status == Session.Status.ACTIVE:
                    session_set_status(session=session, status=Session.Status.COMPLETED)
        except Exception:  # the processes are gone; a failed tidy-up must not hide the run's own error
            logger.exception("Tidying up the validation crew failed")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
