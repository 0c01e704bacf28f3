"""Coordinator instances: a daemon registers, keeps a heartbeat, drains and stops; one that goes silent is dead."""

from __future__ import annotations

import math
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Sum, Value, When
from django.utils import timezone

from agents.models import Agent

from ...events import EventDraft, event_record, events_record
from ...models import CoordinationEvent, CoordinatorInstance, Session, Task
from .recovery import tasks_reclaim_orphaned

E = CoordinationEvent.Type
Status = CoordinatorInstance.Status


def coordinator_register(*, concurrency: int, name: str = "") -> CoordinatorInstance:
    now = timezone.now()
    hostname = socket.gethostname()
    with transaction.atomic():
        instance = CoordinatorInstance.objects.create(
            name=name or f"{hostname}:{os.getpid()}",
            hostname=hostname,
            pid=os.getpid(),
            concurrency=concurrency,
            started_at=now,
            heartbeat_at=now,
        )
        event_record(
            EventDraft(
                type=E.COORDINATOR_STARTED,
                message=f"Coordinator {instance.name} started with {concurrency} workers",
                collaboration_data={"coordinator": instance.pk, "concurrency": concurrency},
                actor=instance.name,
            ),
            now=now,
        )
    return instance


def coordinator_heartbeat(*, instance: CoordinatorInstance, processed: int = 0, tick_ms: float = 0.0) -> None:
    now = timezone.now()
    CoordinatorInstance.objects.filter(pk=instance.pk).update(
        heartbeat_at=now,
        tasks_processed=F("tasks_processed") + processed,
        last_tick_ms=tick_ms,
        # A daemon declared dead while it was stalled comes back to life with its next heartbeat.
        status=Case(When(status=Status.DEAD, then=Value(Status.RUNNING)), default=F("status")),
    )
    # Agents without work are kept alive by whichever daemon runs; working agents are kept alive by
    # the lease renewals of the daemon running their tasks, so a dead daemon's agents go stale.
    # Rows are locked in id order and locked ones skipped (they are being written anyway), so this
    # never deadlocks with a claim or a result being applied.
    with transaction.atomic():
        idle = (
            Agent.objects.filter(session__status=Session.Status.ACTIVE, active_tasks=0)
            .exclude(status__in=[Agent.Status.OFFLINE, Agent.Status.ERROR])
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("id")
            .values("pk")
        )
        Agent.objects.filter(pk__in=idle).update(heartbeat_at=now)


def coordinator_stopping(*, instance: CoordinatorInstance) -> None:
    """Mark the daemon as draining: it claims nothing more and hands back what it cannot finish."""
    CoordinatorInstance.objects.filter(pk=instance.pk).update(status=Status.STOPPING, heartbeat_at=timezone.now())


def coordinators_mark_dead(*, now=None) -> int:
    """Declare dead the daemons whose heartbeat is older than HEARTBEAT_TIMEOUT, one event each.

    Their running tasks are reclaimed and their agents freed at once (tasks_reclaim_orphaned),
    without waiting for the leases to run out.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HIVE["HEARTBEAT_TIMEOUT"])
    with transaction.atomic():
        # NO KEY: a claim writing lease_owner (a foreign key share lock on this row) never waits on it.
        silent = list(
            CoordinatorInstance.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status__in=[Status.RUNNING, Status.STOPPING], heartbeat_at__lt=cutoff)
            .order_by("id")
        )
        if not silent:
            return 0
        CoordinatorInstance.objects.filter(pk__in=[c.pk for c in silent]).update(status=Status.DEAD)
        events_record(
            [
                EventDraft(
                    type=E.COORDINATOR_DEAD,
                    message=f"Coordinator {c.name} missed its heartbeat since {c.heartbeat_at:%H:%M:%S}; "
                    "its work goes back to the queue",
                    collaboration_data={
                        "coordinator": c.pk,
                        "heartbeat_at": c.heartbeat_at.isoformat(),
                        "timeout_s": settings.HIVE["HEARTBEAT_TIMEOUT"],
                    },
                )
                for c in silent
            ],
            now=now,
        )
    for coordinator in silent:  # committed first: a reclaim never holds the coordinator rows
        tasks_reclaim_orphaned(coordinator=coordinator, now=now)
    return len(silent)


def coordinators_fair_share(*, now=None) -> int | None:
    """How many tasks one daemon may hold at once so that the live daemons split the work.

    ceil(work / live daemons), where work is what can run at once: the tasks ready
    or running, at most the agent slots of active sessions. None when one daemon
    (or none) is live: it may take everything. A daemon claims up to the smaller of
    this share and its own batch, so a second daemon finds agents to lease instead
    of the first one leasing every agent it frees again in the same transaction.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HIVE["HEARTBEAT_TIMEOUT"])
    live = CoordinatorInstance.objects.filter(status=Status.RUNNING, heartbeat_at__gte=cutoff).count()
    if live <= 1:
        return None
    slots = (
        Agent.objects.filter(
            session__status=Session.Status.ACTIVE, status__in=[Agent.Status.IDLE, Agent.Status.BUSY]
        ).aggregate(n=Sum("concurrency"))["n"]
        or 0
    )
    work = Task.objects.filter(status__in=[Task.Status.READY, Task.Status.RUNNING]).count()
    return max(1, math.ceil(min(work, slots) / live))


def coordinator_stop(*, instance: CoordinatorInstance, reason: str = "shutdown") -> None:
    now = timezone.now()
    with transaction.atomic():
        CoordinatorInstance.objects.filter(pk=instance.pk).update(
            status=Status.STOPPED, stopped_at=now, heartbeat_at=now
        )
        event_record(
            EventDraft(
                type=E.COORDINATOR_STOPPED,
                message=f"Coordinator {instance.name} stopped ({reason})",
                collaboration_data={"coordinator": instance.pk, "reason": reason},
                actor=instance.name,
            ),
            now=now,
        )
