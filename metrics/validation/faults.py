"""The faults a validation run injects, and what each one measures.

Each fault is injected once per slot of the schedule (`inject`), then watched (`poll`) until
what it measures is known or its time runs out; `outcome` is its entry in the report.

- kill:  SIGKILL one daemon (the busiest), start it again; measures how long until the work
         it held was reclaimed (its attempts closed) and started again elsewhere.
- term:  SIGTERM one daemon; measures how long it took to stop and what it handed back.
- db:    terminate the daemons' PostgreSQL backends (found by application_name); measures how
         long until every daemon heartbeats again.
- redis: SIGKILL the run's own Redis, start it again after an outage; the live feed must
         still deliver every event (checked at the end).
- agent: arm faulty_agent.py: the wrapped agent's next run fails, the one after hangs past
         its timeout; measures whether those tasks were completed all the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

from coordination.models import CoordinatorInstance, Task, TaskAttempt

if TYPE_CHECKING:  # pragma: no cover
    from .runner import Runner

FAULTS = ("kill", "term", "db", "redis", "agent")
# How long a daemon may keep its work before the fault waits for "some work to hit".
BUSY_WAIT_S = 15.0
REDIS_OUTAGE_S = 3.0
AGENT_CHARGES = ["fail", "hang"]


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else round((later - earlier).total_seconds(), 2)


@dataclass
class Fault:
    kind: str
    at_s: float  # seconds into the run it is due
    injected_at: datetime | None = None
    done: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    deadline: float = 0.0

    def outcome(self) -> dict[str, Any]:
        return {"fault": self.kind, "at_s": self.at_s, "injected_at": self.injected_at, **self.data}

    def inject(self, run: Runner) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def poll(self, run: Runner) -> None:
        self.done = True

    def expire(self) -> None:
        """Its time ran out: say what was not seen."""
        self.done = True
        self.data.setdefault("timed_out", True)


def _busiest(run: Runner):
    """The daemon slot holding the most running attempts (waits a little for some work)."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        loads = []
        for slot, child in enumerate(run.daemons):
            instance = run.instance_of(child)
            held = (
                TaskAttempt.objects.filter(coordinator=instance, status=TaskAttempt.Status.RUNNING).count()
                if instance
                else 0
            )
            loads.append((held, slot))
        held, slot = max(loads)
        if held or time.monotonic() >= deadline:
            return slot, held
        time.sleep(0.2)


class KillFault(Fault):
    def inject(self, run: Runner) -> None:
        slot, _ = _busiest(run)
        child = run.daemons[slot]
        instance = run.instance_of(child)
        self.injected_at = timezone.now()
        run.procs.kill(child)
        attempts = list(
            TaskAttempt.objects.filter(coordinator=instance, status=TaskAttempt.Status.RUNNING).values_list(
                "id", "task_id"
            )
        )
        self.data.update(
            {"daemon": child.name, "coordinator": instance.pk if instance else None, "in_flight": len(attempts)}
        )
        self.attempt_ids = [a for a, _ in attempts]
        self.task_ids = [t for _, t in attempts]
        run.daemon_restart(slot)
        self.deadline = time.monotonic() + run.reclaim_budget_s

    def poll(self, run: Runner) -> None:
        coordinator = self.data["coordinator"]
        status = CoordinatorInstance.objects.filter(pk=coordinator).values_list("status", flat=True).first()
        if status == CoordinatorInstance.Status.DEAD and "dead_detected_s" not in self.data:
            self.data["dead_detected_s"] = round((timezone.now() - self.injected_at).total_seconds(), 2)
        if not self.attempt_ids:
            self.data.update({"reclaimed_s": None, "note": "no work was in flight on the killed daemon"})
            self.done = status == CoordinatorInstance.Status.DEAD or time.monotonic() > self.deadline
            return
        closed = TaskAttempt.objects.filter(pk__in=self.attempt_ids).exclude(status=TaskAttempt.Status.RUNNING)
        if closed.count() < len(self.attempt_ids):
            return
        self.data["reclaimed_s"] = _seconds(closed.aggregate(last=Max("finished_at"))["last"], self.injected_at)
        self.data["closed_as"] = sorted(set(closed.values_list("status", flat=True)))
        restarted = TaskAttempt.objects.filter(task_id__in=self.task_ids, started_at__gt=self.injected_at).aggregate(
            first=Min("started_at"), last=Max("started_at")
        )
        self.data["restarted_s"] = _seconds(restarted["last"], self.injected_at)
        self.done = True

    def expire(self) -> None:
        super().expire()
        if self.attempt_ids and "reclaimed_s" not in self.data:
            self.data["reclaimed_s"] = None
            self.data["not_reclaimed"] = True


class TermFault(Fault):
    def inject(self, run: Runner) -> None:
        slot, _ = _busiest(run)
        child = run.daemons[slot]
        instance = run.instance_of(child)
        self.injected_at = timezone.now()
        started = time.monotonic()
        # One SIGTERM, as a deploy sends it (a second one would cut the daemon's grace short).
        code = run.procs.stop(child, grace=run.options.grace + 20)
        handed_back = TaskAttempt.objects.filter(
            coordinator=instance, status=TaskAttempt.Status.HANDED_BACK, finished_at__gte=self.injected_at
        ).count()
        self.data.update(
            {
                "daemon": child.name,
                "stop_s": round(time.monotonic() - started, 2),
                "exit_code": code,
                "handed_back": handed_back,
            }
        )
        run.daemon_restart(slot)
        self.done = True


class DatabaseFault(Fault):
    def inject(self, run: Runner) -> None:
        self.injected_at = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
                [f"{run.app_name_prefix}-d%"],
            )
            (terminated,) = cursor.fetchone()
        self.data["backends_terminated"] = terminated
        self.watch = [i.pk for i in (run.instance_of(child) for child in run.daemons) if i is not None]
        self.deadline = time.monotonic() + 120

    def poll(self, run: Runner) -> None:
        beats = CoordinatorInstance.objects.filter(pk__in=self.watch, heartbeat_at__gt=self.injected_at)
        if beats.count() < len(self.watch):
            return
        self.data["recovered_s"] = _seconds(beats.aggregate(last=Max("heartbeat_at"))["last"], self.injected_at)
        self.done = True


class RedisFault(Fault):
    def inject(self, run: Runner) -> None:
        self.injected_at = timezone.now()
        started = time.monotonic()
        run.procs.kill(run.redis)
        time.sleep(REDIS_OUTAGE_S)
        run.redis = run.procs.restart(run.redis)
        run.wait_port(run.redis_port, what="redis-server")
        self.data.update({"outage_s": round(time.monotonic() - started, 2)})
        self.done = True


class AgentFault(Fault):
    def inject(self, run: Runner) -> None:
        self.injected_at = timezone.now()
        self.since = sum(1 for _ in _charges_used(run.agent_log))
        run.agent_charges.write_text(json.dumps(AGENT_CHARGES))
        self.data.update({"agent": run.crew.faulty_agent, "armed": list(AGENT_CHARGES), "timeout_s": run.agent_timeout})
        self.deadline = time.monotonic() + run.agent_timeout * 3 + 120

    def poll(self, run: Runner) -> None:
        used = list(_charges_used(run.agent_log))[self.since :]
        self.data["hit"] = used
        self.done = len(used) >= len(AGENT_CHARGES)

    def settle(self) -> None:
        """At the end of the run: did the tasks it hit get done all the same?"""
        statuses = dict(
            Task.objects.filter(pk__in=[h["task"] for h in self.data.get("hit", [])]).values_list("id", "status")
        )
        for hit in self.data.get("hit", []):
            hit["task_status"] = statuses.get(hit["task"], "")


def _charges_used(log: Path):
    if not log.exists():
        return
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            yield {"charge": entry["charge"], "task": entry["task"], "attempt": entry["attempt"]}


KINDS: dict[str, type[Fault]] = {
    "kill": KillFault,
    "term": TermFault,
    "db": DatabaseFault,
    "redis": RedisFault,
    "agent": AgentFault,
}


def schedule(kinds: list[str], *, run_seconds: float, interval: float) -> list[Fault]:
    """Faults spread evenly over the run, cycling through `kinds`: at least one of each, one per `interval`."""
    if not kinds:
        return []
    slots = max(len(kinds), int(run_seconds // interval)) if interval > 0 else len(kinds)
    return [
        KINDS[kinds[i % len(kinds)]](kind=kinds[i % len(kinds)], at_s=round(run_seconds * (i + 1) / (slots + 1), 1))
        for i in range(slots)
    ]
