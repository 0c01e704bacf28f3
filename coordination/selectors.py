"""Read-only views of coordination state for the API, the console and health checks.

Each function runs a fixed number of queries whatever the number of rows and
returns plain JSON-serialisable values (or a QuerySet where documented).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from agents.models import Agent

from .models import CoordinationEvent, CoordinatorInstance, Decision, EventPrune, Session, Task

# How long a stopped or dead daemon stays on the status page.
DAEMON_HISTORY = timedelta(hours=1)
AGENT_LIST_LIMIT = 200
EVENT_LIMIT_MAX = 1000
LIVE_SESSION_STATUSES = (Session.Status.ACTIVE, Session.Status.PAUSED)


def _age(now: datetime, moment: datetime | None) -> float | None:
    return round((now - moment).total_seconds(), 1) if moment else None


def coordination_status(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything the status page shows, in seven queries.

    Returns::

        {
          "generated_at": iso,
          "health": {"status": "ok" | "degraded" | "down", "reasons": [str, …]},
          "daemons": [{"id", "name", "hostname", "status", "heartbeat_age_s", "alive": bool, "leader": bool,
                       "tasks_processed", "last_tick_ms", "started_at": iso}],
          "leader_id": int | None,
          "sessions": [{"id", "name", "status", "goal", "workspace", "created_at": iso,
                        "agents", "ready", "running", "blocked", "open_decisions"}],
          "agents_by_role": {role: count}, "agents_by_status": {status: count}, "agents_total": int,
          "agents": [{"id", "name", "role", "status", "runtime", "simulated": bool, "session_id",
                      "current_task": {"id", "title"} | None, "capabilities": [...], "heartbeat_age_s",
                      "active_tasks", "concurrency", "status_reason"}],   # at most 200, live sessions
          "queue_depth": int,        # ready tasks
          "tasks_in_flight": int,    # running tasks
          "tasks_blocked": int,      # tasks waiting on a decision
          "open_decisions": int, "overdue_decisions": int,
        }

    Agents counted are those of active or paused sessions (and unattached ones).
    """
    now = now or timezone.now()
    timeout = timedelta(seconds=settings.HIVE["HEARTBEAT_TIMEOUT"])

    daemons = list(
        CoordinatorInstance.objects.filter(
            Q(status__in=[CoordinatorInstance.Status.RUNNING, CoordinatorInstance.Status.STOPPING])
            | Q(heartbeat_at__gte=now - DAEMON_HISTORY)
        ).order_by("started_at", "id")[:50]
    )
    alive = [d for d in daemons if d.status == CoordinatorInstance.Status.RUNNING and now - d.heartbeat_at <= timeout]
    leader = alive[0] if alive else None
    stale_daemons = [
        d
        for d in daemons
        if d.status in (CoordinatorInstance.Status.RUNNING, CoordinatorInstance.Status.STOPPING) and d not in alive
    ]

    # One grouped count over open tasks (task_claim_idx leads with status).
    open_counts = Counter()
    per_session: dict[int, Counter] = {}
    for session_id, status, n in (
        Task.objects.filter(status__in=[Task.Status.READY, Task.Status.RUNNING, Task.Status.BLOCKED])
        .values_list("session_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        open_counts[status] += n
        per_session.setdefault(session_id, Counter())[status] += n

    # Open decisions per session; the totals are their sums (decision_open_idx leads with status).
    decisions_by_session: dict[int, int] = {}
    decision_row = {"open": 0, "overdue": 0}
    for session_id, n, overdue in (
        Decision.objects.filter(status=Decision.Status.OPEN)
        .values_list("session_id")
        .annotate(n=Count("pk"), overdue=Count("pk", filter=Q(deadline__lt=now)))
        .order_by()
    ):
        decisions_by_session[session_id] = n
        decision_row["open"] += n
        decision_row["overdue"] += overdue

    live_agents = Agent.objects.filter(Q(session__isnull=True) | Q(session__status__in=LIVE_SESSION_STATUSES))
    by_role: Counter = Counter()
    by_status: Counter = Counter()
    agents_per_session: Counter = Counter()
    stale_agents = 0
    for role, status, session_id, n, stale in (
        live_agents.values_list("role", "status", "session_id")
        .annotate(
            n=Count("pk"),
            stale=Count("pk", filter=Q(status=Agent.Status.BUSY) & (Q(heartbeat_at__lt=now - timeout))),
        )
        .order_by()
    ):
        by_role[role] += n
        by_status[status] += n
        agents_per_session[session_id] += n
        stale_agents += stale

    sessions = list(
        Session.objects.filter(status__in=LIVE_SESSION_STATUSES)
        .order_by("-created_at")
        .values("id", "name", "status", "goal", "workspace", "created_at")[:100]
    )
    for session in sessions:
        counts = per_session.get(session["id"], Counter())
        session["created_at"] = session["created_at"].isoformat()
        session["agents"] = agents_per_session.get(session["id"], 0)
        session["ready"] = counts[Task.Status.READY]
        session["running"] = counts[Task.Status.RUNNING]
        session["blocked"] = counts[Task.Status.BLOCKED]
        session["open_decisions"] = decisions_by_session.get(session["id"], 0)

    agents = list(live_agents.order_by("session_id", "role", "name")[:AGENT_LIST_LIMIT])
    current = {
        agent_id: {"id": task_id, "title": title}
        for task_id, title, agent_id in Task.objects.filter(
            status=Task.Status.RUNNING, agent_id__in=[a.pk for a in agents]
        )
        .order_by("-started_at")
        .values_list("id", "title", "agent_id")
    }

    reasons: list[str] = []
    if not alive:
        reasons.append("no live coordinator daemon")
    if stale_daemons:
        reasons.append(f"{len(stale_daemons)} daemon(s) with a stale heartbeat")
    if stale_agents:
        reasons.append(f"{stale_agents} busy agent(s) with a stale heartbeat")
    if by_status[Agent.Status.ERROR]:
        reasons.append(f"{by_status[Agent.Status.ERROR]} agent(s) in error")
    if decision_row["overdue"]:
        reasons.append(f"{decision_row['overdue']} decision(s) overdue")
    health = "down" if not alive else ("degraded" if reasons else "ok")

    return {
        "generated_at": now.isoformat(),
        "health": {"status": health, "reasons": reasons},
        "daemons": [
            {
                "id": d.pk,
                "name": d.name,
                "hostname": d.hostname,
                "status": d.status,
                "heartbeat_age_s": _age(now, d.heartbeat_at),
                "alive": d in alive,
                "leader": d is leader,
                "tasks_processed": d.tasks_processed,
                "last_tick_ms": round(d.last_tick_ms, 1),
                "started_at": d.started_at.isoformat(),
            }
            for d in reversed(daemons)
        ],
        "leader_id": leader.pk if leader else None,
        "sessions": sessions,
        "agents_by_role": dict(sorted(by_role.items())),
        "agents_by_status": dict(sorted(by_status.items())),
        "agents_total": sum(by_role.values()),
        "agents": [
            {
                "id": a.pk,
                "name": a.name,
                "role": a.role,
                "status": a.status,
                "runtime": a.runtime,
                "simulated": a.is_simulated,
                "session_id": a.session_id,
                "current_task": current.get(a.pk),
                "capabilities": list(a.capabilities or []),
                "heartbeat_age_s": _age(now, a.heartbeat_at),
                "active_tasks": a.active_tasks,
                "concurrency": a.concurrency,
                "status_reason": a.status_reason,
            }
            for a in agents
        ],
        "queue_depth": open_counts[Task.Status.READY],
        "tasks_in_flight": open_counts[Task.Status.RUNNING],
        "tasks_blocked": open_counts[Task.Status.BLOCKED],
        "open_decisions": decision_row["open"],
        "overdue_decisions": decision_row["overdue"],
    }


def live_daemon_exists(*, now: datetime | None = None) -> bool:
    """Is any coordinator daemon running with a fresh heartbeat? One query (coordinator_health_idx)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HIVE["HEARTBEAT_TIMEOUT"])
    return CoordinatorInstance.objects.filter(
        status=CoordinatorInstance.Status.RUNNING, heartbeat_at__gte=cutoff
    ).exists()


def open_decisions(*, session: Session | int | None = None) -> QuerySet[Decision]:
    """Open decisions, soonest deadline first, with session, workflow, task and its agent joined."""
    queryset = (
        Decision.objects.filter(status=Decision.Status.OPEN)
        .select_related("session", "workflow", "task", "task__agent")
        .order_by("deadline", "id")
    )
    if session is not None:
        queryset = queryset.filter(session=session)
    return queryset


def events_after(
    *,
    after: int = 0,
    session: Session | int | None = None,
    types: str | Iterable[str] | None = None,
    agent: Agent | int | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[CoordinationEvent]:
    """Up to `limit` (1..1000) events with id > `after`, ascending id.

    Filtering by session, type, agent or actor walks the matching ``(x, id)`` cursor index;
    `since`/`until` bound created_at (inclusive / exclusive).
    """
    limit = max(1, min(int(limit), EVENT_LIMIT_MAX))
    queryset = CoordinationEvent.objects.filter(id__gt=max(int(after or 0), 0))
    if session is not None:
        queryset = queryset.filter(session=session)
    if types:
        types = [types] if isinstance(types, str) else list(types)
        queryset = queryset.filter(type=types[0]) if len(types) == 1 else queryset.filter(type__in=types)
    if agent is not None:
        queryset = queryset.filter(agent=agent)
    if actor:
        queryset = queryset.filter(actor=actor)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    return list(queryset.order_by("id")[:limit])


def events_pruned_through() -> int:
    """The replay horizon: every event id up to this one was removed by retention (0: none ever was).

    One query on event_prune_horizon_idx.
    """
    return EventPrune.objects.order_by("-pruned_through_id").values_list("pruned_through_id", flat=True).first() or 0


def oldest_event_id() -> int | None:
    """The oldest event still kept (None when the table is empty). One query on the primary key."""
    return CoordinationEvent.objects.order_by("id").values_list("id", flat=True).first()


def cursor_expired(*, after: int) -> dict[str, Any] | None:
    """When a client that has seen every event up to `after` missed some to retention, what it is told.

    None when nothing it has not seen was removed (a cursor of 0 means "from the oldest kept").
    Otherwise ``{"detail", "after", "pruned_through", "oldest_kept_id"}``: resume with ``after=pruned_through``.
    """
    if after <= 0:
        return None
    pruned_through = events_pruned_through()
    if after >= pruned_through:
        return None
    oldest = oldest_event_id()
    kept = f"the oldest kept event is {oldest}" if oldest is not None else "no event is kept"
    return {
        "detail": f"events after {after} up to {pruned_through} were removed by retention; "
        f"resume with after={pruned_through} ({kept})",
        "after": after,
        "pruned_through": pruned_through,
        "oldest_kept_id": oldest,
    }
