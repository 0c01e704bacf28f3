"""Console-only reads: timeline lanes, the collaboration-flow graph, replay and agent history.

Everything is derived from task attempts and coordination events (the rows);
nothing here is a constant or an estimate. Each function runs a fixed number
of queries.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from agents.models import Agent

from .models import CoordinationEvent, Decision, Session, Task, TaskAttempt, Workflow

E = CoordinationEvent.Type
ROLE_ORDER = [role.value for role in Agent.Role]
# Left to right along feature delivery, so most handoffs point forward and hand-backs are short.
FLOW_ORDER = ["product_manager", "architect", "developer", "reviewer", "tester", "devops"]
ROLE_LABELS = dict(Agent.Role.choices)
TIMELINE_ATTEMPT_LIMIT = 2000
REPLAY_EVENT_LIMIT = 20000
# Event ids the replay slider stops at (the most recent ones).
REPLAY_STOP_LIMIT = 5000
FLOW_EVENT_LIMIT = 20000
# Event types after which the agent named on the event is no longer working on the task.
_TASK_RELEASED = {E.TASK_COMPLETED, E.TASK_FAILED, E.TASK_RECLAIMED, E.TASK_CANCELLED}


def _pct(value: float, span: float) -> float:
    return round(100.0 * value / span, 3) if span > 0 else 0.0


# --- timeline ---------------------------------------------------------------------------


def session_timeline(*, session: Session, now: datetime | None = None) -> dict[str, Any]:
    """A lane per agent of `session` with one bar per task attempt (started → finished or now).

    Returns ``{"start": dt | None, "end": dt, "span_s": float, "lanes": [{"agent": {id, name, role, simulated},
    "bars": [{"task_id", "title", "step", "status", "outcome", "left", "width", "started_at", "finished_at",
    "duration_s", "running", "pair"}]}], "ticks": [{"left", "label"}]}``; left/width are percentages of the
    session span. Two queries.
    """
    now = now or timezone.now()
    agents = list(Agent.objects.filter(session=session).order_by("role", "name"))
    attempts = list(
        TaskAttempt.objects.filter(task__session=session)
        .select_related("task")
        .order_by("started_at", "id")[:TIMELINE_ATTEMPT_LIMIT]
    )
    start = min([a.started_at for a in attempts], default=None)
    end = max([a.finished_at or now for a in attempts], default=now)
    span = max((end - start).total_seconds(), 1.0) if start else 0.0
    by_agent: dict[int, list[dict]] = defaultdict(list)
    for attempt in attempts:
        finished = attempt.finished_at
        stop = finished or now
        bar_left = _pct((attempt.started_at - start).total_seconds(), span)
        width = max(_pct((stop - attempt.started_at).total_seconds(), span), 0.6)
        by_agent[attempt.agent_id].append(
            {
                "task_id": attempt.task_id,
                "title": attempt.task.title,
                "step": attempt.task.step,
                "status": attempt.status,
                "outcome": attempt.outcome,
                "left": bar_left,
                "width": min(width, 100.0 - bar_left) if bar_left < 100 else 0.6,
                "started_at": attempt.started_at,
                "finished_at": finished,
                "duration_s": round((stop - attempt.started_at).total_seconds(), 1),
                "running": attempt.status == TaskAttempt.Status.RUNNING,
                "pair": bool(attempt.task.pair_agent_id),
            }
        )
    # Pair partners also worked on the task: show the navigator's share on their lane.
    navigators = {a.task_id: a.task.pair_agent_id for a in attempts if a.task.pair_agent_id}
    for attempt in attempts:
        nav = navigators.get(attempt.task_id)
        if nav and nav != attempt.agent_id and attempt.task.pair_agent_id == nav:
            bar = next(b for b in by_agent[attempt.agent_id] if b["task_id"] == attempt.task_id)
            by_agent[nav].append({**bar, "navigator": True})
    lanes = [
        {
            "agent": {"id": a.pk, "name": a.name, "role": a.role, "simulated": a.is_simulated, "status": a.status},
            "bars": by_agent.get(a.pk, []),
        }
        for a in agents
    ]
    ticks = []
    if start:
        for i in range(5):
            moment = start + (end - start) * (i / 4)
            ticks.append({"left": i * 25, "label": timezone.localtime(moment).strftime("%H:%M:%S")})
    return {"start": start, "end": end, "span_s": round(span, 1), "lanes": lanes, "ticks": ticks}


# --- collaboration flow -------------------------------------------------------------------


def collaboration_flow(*, session: Session | int | None = None) -> dict[str, Any]:
    """Who hands work to whom, drawn from task_handoff, pair_programming and code_review_cycle events.

    Nodes are roles (with their agents and the work in flight); edges are handoffs
    role → role with counts. Pair programming (driver ↔ navigator) and review
    cycles (changes requested → back to the developer) are counted separately so
    the diagram can show them as such. Four queries.

    Returns ``{"nodes": [{"role", "label", "x", "y", "agents": [{id, name, status, simulated}], "in_flight",
    "handoffs_out", "handoffs_in"}], "edges": [{"source", "target", "count", "kind", "path", "label_x",
    "label_y", "width"}], "pairs": [{"driver", "navigator", "count"}], "review": {"cycles", "approved",
    "changes_requested"}, "handoffs_total": int, "in_flight": [{"task_id", "title", "role", "agent"}],
    "width", "height"}``.
    """
    events = CoordinationEvent.objects.filter(
        type__in=[E.TASK_HANDOFF, E.PAIR_PROGRAMMING, E.CODE_REVIEW_CYCLE]
    ).order_by("-id")
    agents = Agent.objects.all()
    running = Task.objects.in_flight().select_related("agent")
    if session is not None:
        events = events.filter(session=session)
        agents = agents.filter(session=session)
        running = running.filter(session=session)
    else:
        agents = agents.filter(Q(session__isnull=True) | Q(session__status__in=[Session.Status.ACTIVE]))

    handoffs: Counter = Counter()
    pairs: Counter = Counter()
    review = Counter()
    for type_, data, parts in events.values_list("type", "collaboration_data", "participants")[:FLOW_EVENT_LIMIT]:
        data = data or {}
        if type_ == E.TASK_HANDOFF:
            source = (data.get("from") or {}).get("role") or (parts[0]["role"] if parts else None)
            target = data.get("to_role")
            if source and target:
                handoffs[(source, target)] += 1
        elif type_ == E.PAIR_PROGRAMMING and data.get("phase") == "started":
            driver, navigator = data.get("driver") or {}, data.get("navigator") or {}
            if driver and navigator:
                pairs[(driver.get("name", "?"), navigator.get("name", "?"))] += 1
        elif type_ == E.CODE_REVIEW_CYCLE:
            review["cycles"] += 1
            review["approved" if data.get("outcome") == "success" else "changes_requested"] += 1

    in_flight = [
        {
            "task_id": t.pk,
            "title": t.title,
            "role": t.role,
            "agent": t.agent.name if t.agent else "",
            "simulated": t.simulated,
        }
        for t in running.order_by("started_at")[:200]
    ]
    agents_by_role: dict[str, list[dict]] = defaultdict(list)
    for a in agents.order_by("role", "name")[:500]:
        agents_by_role[a.role].append({"id": a.pk, "name": a.name, "status": a.status, "simulated": a.is_simulated})
    flight_by_role = Counter(item["role"] for item in in_flight)

    width, height = 1000, 420
    order = FLOW_ORDER + [role for role in ROLE_ORDER if role not in FLOW_ORDER]
    xs = {role: 90 + i * (width - 180) / (len(order) - 1) for i, role in enumerate(order)}
    y = height / 2
    out_counts: Counter = Counter()
    in_counts: Counter = Counter()
    for (source, target), n in handoffs.items():
        out_counts[source] += n
        in_counts[target] += n
    nodes = [
        {
            "role": role,
            "label": ROLE_LABELS.get(role, role),
            "x": round(xs[role], 1),
            "y": y,
            "agents": agents_by_role.get(role, []),
            "in_flight": flight_by_role.get(role, 0),
            "handoffs_out": out_counts.get(role, 0),
            "handoffs_in": in_counts.get(role, 0),
        }
        for role in order
    ]
    top = max(handoffs.values(), default=1)
    edges = []
    for (source, target), n in sorted(handoffs.items(), key=lambda kv: (xs.get(kv[0][0], 0), kv[0][1])):
        if source not in xs or target not in xs:
            continue
        kind = _edge_kind(xs[source], xs[target])
        edges.append(
            {
                "source": source,
                "target": target,
                "count": n,
                "kind": kind,
                "width": round(1.5 + 4.5 * math.sqrt(n / top), 2),
                **_edge_geometry(xs[source], xs[target], y, kind),
            }
        )
    return {
        "nodes": nodes,
        "edges": edges,
        "pairs": [{"driver": d, "navigator": nav, "count": n} for (d, nav), n in pairs.most_common(20)],
        "pair_sessions": sum(pairs.values()),
        "review": {k: review.get(k, 0) for k in ("cycles", "approved", "changes_requested")},
        "handoffs_total": sum(handoffs.values()),
        "in_flight": in_flight,
        "width": width,
        "height": height,
    }


def _edge_kind(x1: float, x2: float) -> str:
    if x1 == x2:
        return "self"
    return "forward" if x2 > x1 else "back"


def _edge_geometry(x1: float, x2: float, y: float, kind: str) -> dict[str, Any]:
    """An SVG path: forward handoffs arc above the row of roles, hand-backs below, same-role loops on top."""
    r = 34  # node radius
    if kind == "self":
        path = f"M {x1 - 14:.1f} {y - r:.1f} C {x1 - 50:.1f} {y - 120:.1f}, {x1 + 50:.1f} {y - 120:.1f}, "
        path += f"{x1 + 14:.1f} {y - r:.1f}"
        return {"path": path, "label_x": round(x1, 1), "label_y": round(y - 100, 1)}
    distance = abs(x2 - x1)
    lift = min(40 + distance * 0.28, 170)
    if kind == "forward":
        sy, cy = y - r + 4, y - r - lift
    else:
        # below the node's name and agent count
        sy, cy = y + 84, y + 84 + lift * 0.6
    sx, ex = x1 + (8 if kind == "forward" else -8), x2 - (8 if kind == "forward" else -8)
    mx = (sx + ex) / 2
    path = f"M {sx:.1f} {sy:.1f} Q {mx:.1f} {cy:.1f} {ex:.1f} {sy:.1f}"
    label_y = (sy + cy) / 2 + (-4 if kind == "forward" else 12)
    return {"path": path, "label_x": round(mx, 1), "label_y": round(label_y, 1)}


# --- replay ---------------------------------------------------------------------------------


def session_event_bounds(*, session: Session) -> dict[str, Any]:
    """The replay slider's stops: the session's last REPLAY_STOP_LIMIT event ids, oldest first. One query.

    Returns ``{"first", "last", "count", "ids", "truncated"}`` (truncated: older events exist).
    A session of a million events must not put a million ids in its page.
    """
    newest = CoordinationEvent.objects.filter(session=session).order_by("-id").values_list("id", flat=True)
    ids = list(newest[: REPLAY_STOP_LIMIT + 1])[::-1]
    truncated = len(ids) > REPLAY_STOP_LIMIT
    ids = ids[1:] if truncated else ids
    return {
        "first": ids[0] if ids else None,
        "last": ids[-1] if ids else None,
        "count": len(ids),
        "ids": ids,
        "truncated": truncated,
    }


def replay_state(*, session: Session, at: int | None = None) -> dict[str, Any]:
    """The crew's state in `session` just after event `at` (default: the last event), folded from events.

    Returns ``{"at": {"id", "type", "message", "created_at", "simulated"} | None, "position", "count",
    "agents": [{"id", "name", "role", "status", "task": {"id", "title", "step"} | None, "done"}],
    "workflows": [{"id", "title", "pattern", "status", "step"}], "open_decisions": int,
    "tasks_completed": int}``. Three queries.
    """
    agents = {
        a.pk: {"id": a.pk, "name": a.name, "role": a.role, "status": "idle", "task": None, "done": 0}
        for a in Agent.objects.filter(session=session).order_by("role", "name")
    }
    events = CoordinationEvent.objects.filter(session=session).order_by("id")
    total = events.count()
    if at is not None:
        events = events.filter(id__lte=at)
    rows = list(events[:REPLAY_EVENT_LIMIT])
    titles = dict(Workflow.objects.filter(session=session).values_list("id", "title"))
    workflows: dict[int, dict[str, Any]] = {}
    open_decisions: set[int] = set()
    completed = 0
    for event in rows:
        data = event.collaboration_data or {}
        agent = agents.get(event.agent_id) if event.agent_id else None
        wf = None
        if event.workflow_id:
            wf = workflows.setdefault(
                event.workflow_id,
                {
                    "id": event.workflow_id,
                    "title": titles.get(event.workflow_id, f"workflow {event.workflow_id}"),
                    "pattern": data.get("pattern", ""),
                    "status": "running",
                    "step": "",
                },
            )
        if event.type == E.TEAM_SPAWNED:
            for part in event.participants or []:
                if part.get("id") in agents:
                    agents[part["id"]]["status"] = "idle"
        elif event.type == E.TASK_ASSIGNED and agent is not None:
            title = event.message.split("“", 1)[-1].rsplit("”", 1)[0] if "“" in event.message else ""
            agent["status"] = "busy"
            agent["task"] = {"id": event.task_id, "title": title, "step": data.get("step", "")}
            if wf is not None:
                wf["step"] = data.get("step", "")
                wf["status"] = "running"
            navigator = data.get("navigator") or {}
            if navigator.get("id") in agents:
                agents[navigator["id"]]["status"] = "busy"
                agents[navigator["id"]]["task"] = {**agent["task"], "navigating": True}
        elif event.type in _TASK_RELEASED or (event.type == E.TASK_HANDOFF and "from_step" not in data):
            # A handoff without from_step is work handed back mid-run (restart, shutdown): its agent stops.
            for holder in agents.values():
                if holder["task"] and holder["task"]["id"] == event.task_id:
                    holder["task"] = None
                    if holder["status"] == "busy":
                        holder["status"] = "idle"
            if event.type == E.TASK_COMPLETED:
                completed += 1
                if agent is not None:
                    agent["done"] += 1
        elif event.type == E.AGENT_PAUSED and agent is not None:
            agent["status"] = "paused"
        elif event.type in (E.AGENT_RESUMED, E.AGENT_RESTARTED) and agent is not None:
            agent["status"] = "busy" if agent["task"] and event.type == E.AGENT_RESUMED else "idle"
            if event.type == E.AGENT_RESTARTED:
                agent["task"] = None
        elif event.type == E.AGENT_OFFLINE and agent is not None:
            agent["status"] = "offline"
            agent["task"] = None
        elif event.type == E.DECISION_REQUESTED:
            open_decisions.add(data.get("decision"))
            if wf is not None:
                wf["status"] = "waiting_human"
        elif event.type == E.DECISION_ANSWERED:
            open_decisions.discard(data.get("decision"))
            if wf is not None and wf["status"] == "waiting_human" and not open_decisions:
                wf["status"] = "running"
        elif event.type == E.COLLABORATION_COMPLETED and wf is not None:
            wf["status"] = "completed"
            wf["step"] = ""
        elif event.type == E.COLLABORATION_FAILED and wf is not None:
            wf["status"] = "cancelled" if data.get("cancelled") else "failed"
            wf["step"] = ""
    last = rows[-1] if rows else None
    return {
        "at": {
            "id": last.pk,
            "type": last.type,
            "message": last.message,
            "created_at": last.created_at,
            "simulated": last.simulated,
        }
        if last
        else None,
        "position": len(rows),
        "count": total,
        "agents": list(agents.values()),
        "workflows": sorted(workflows.values(), key=lambda w: w["id"]),
        "open_decisions": len(open_decisions),
        "tasks_completed": completed,
    }


# --- agent history ------------------------------------------------------------------------


def agent_history(*, agent: Agent, limit: int = 30) -> dict[str, Any]:
    """An agent's recent attempts and events, and its success pattern per step. Two queries.

    Returns ``{"attempts": [{"task_id", "title", "step", "number", "status", "outcome", "summary",
    "started_at", "finished_at", "duration_s"}], "events": [CoordinationEvent], "success_pattern":
    [{"step", "ok", "failed", "rate"}]}``.
    """
    attempts = [
        {
            "task_id": a.task_id,
            "title": a.task.title,
            "step": a.task.step,
            "number": a.number,
            "status": a.status,
            "outcome": a.outcome,
            "summary": a.summary,
            "started_at": a.started_at,
            "finished_at": a.finished_at,
            "duration_s": round((a.finished_at - a.started_at).total_seconds(), 1) if a.finished_at else None,
            "simulated": a.task.simulated,
        }
        for a in TaskAttempt.objects.filter(agent=agent).select_related("task").order_by("-started_at", "-id")[:limit]
    ]
    events = list(
        CoordinationEvent.objects.filter(Q(agent=agent) | Q(participants__contains=[{"id": agent.pk}])).order_by("-id")[
            :limit
        ]
        if _json_contains_supported()
        else CoordinationEvent.objects.filter(agent=agent).order_by("-id")[:limit]
    )
    pattern = []
    for step, record in sorted((agent.success_patterns or {}).items()):
        if not isinstance(record, dict):
            continue
        ok, failed = int(record.get("ok", 0)), int(record.get("failed", 0))
        pattern.append({"step": step, "ok": ok, "failed": failed, "rate": ok / (ok + failed) if ok + failed else None})
    return {"attempts": attempts, "events": events, "success_pattern": pattern}


def _json_contains_supported() -> bool:
    return connection.vendor == "postgresql"


# --- lists ------------------------------------------------------------------------------


def recent_events(*, limit: int = 40) -> list[CoordinationEvent]:
    """The newest events across sessions, newest first (the live feed's first paint). One query."""
    return list(CoordinationEvent.objects.select_related("session").order_by("-id")[:limit])


def session_events(
    *,
    session: Session,
    type: str | None = None,
    agent: int | None = None,
    actor: str | None = None,
    limit: int = 200,
) -> list[CoordinationEvent]:
    """The newest events of a session, optionally of one type, one agent or one actor, newest first. One query."""
    queryset = CoordinationEvent.objects.filter(session=session)
    if type:
        queryset = queryset.filter(type=type)
    if actor:
        queryset = queryset.filter(actor=actor)
    if agent:
        # Pair partners are participants, not the event's agent; JSON containment needs PostgreSQL.
        if _json_contains_supported():
            queryset = queryset.filter(Q(agent_id=agent) | Q(participants__contains=[{"id": agent}]))
        else:
            queryset = queryset.filter(agent_id=agent)
    return list(queryset.order_by("-id")[:limit])


def session_actors(*, session: Session) -> list[str]:
    """Who has changed this session (people and daemons), for the event log's filter. One query."""
    rows = CoordinationEvent.objects.filter(session=session).exclude(actor="").values_list("actor", flat=True)
    return sorted(set(rows.order_by().distinct()[:200]))


def session_choices() -> list[tuple[int, str]]:
    """(id, name) of sessions for pickers, live ones first. One query."""
    rows = Session.objects.order_by("-created_at").values_list("id", "name", "status")[:100]
    return [(pk, f"{name} ({status})") for pk, name, status in rows]


def session_list() -> list[dict[str, Any]]:
    """Every session with its crew size, workflow counts and open decisions. Four queries."""
    sessions = list(Session.objects.order_by("-created_at")[:200])
    ids = [s.pk for s in sessions]
    crew = Counter(dict(_count_by(Agent.objects.filter(session_id__in=ids), "session_id")))
    open_wf = Counter(
        dict(_count_by(Workflow.objects.filter(session_id__in=ids, status__in=Workflow.OPEN_STATUSES), "session_id"))
    )
    done_wf = Counter(
        dict(_count_by(Workflow.objects.filter(session_id__in=ids, status=Workflow.Status.COMPLETED), "session_id"))
    )
    return [
        {
            "session": s,
            "agents": crew.get(s.pk, 0),
            "open_workflows": open_wf.get(s.pk, 0),
            "completed_workflows": done_wf.get(s.pk, 0),
        }
        for s in sessions
    ]


def _count_by(queryset, field: str):
    return queryset.values_list(field).annotate(n=Count("pk")).order_by()


def agent_current_task(*, agent: Agent) -> Task | None:
    """The task the agent runs now (driver), if any. One query."""
    return Task.objects.in_flight().filter(agent=agent).select_related("workflow").order_by("-started_at").first()


def recent_decisions(*, limit: int = 15) -> list[Decision]:
    """Decisions answered or expired most recently, with who answered. One query."""
    return list(
        Decision.objects.exclude(status=Decision.Status.OPEN)
        .select_related("session", "task", "answered_by")
        .order_by("-answered_at", "-id")[:limit]
    )


def last_event_id() -> int:
    """The newest event id (the cursor a freshly rendered page resumes its socket from). One query."""
    return CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
