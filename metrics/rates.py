"""How well the crew coordinates in a window: throughput, success rates, cycle times, cost by role and agent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce

from agents.models import Agent
from coordination.models import Decision, Task, Workflow

from . import rollups
from .percentiles import duration_percentiles, handoff_latency
from .totals import _simulated_share, attempt_outcomes, success, success_by
from .windows import (
    DEC,
    TASK_WORKED,
    ZERO,
    _in_window,
    _share,
    _span_seconds,
    seconds_between,
    window_bounds,
)


def coordination_metrics(*, window: str) -> dict[str, Any]:
    """How well the crew coordinates in `window` ("1h", "24h", "7d", "all"). Twelve queries ("all": thirteen).

    Returns::

        {
          "window": "24h", "start": iso | None, "end": iso, "span_hours": float,
          "throughput": {"tasks_completed", "tasks_failed", "tasks_cancelled", "workflows_completed",
                         "attempts_failed", "tasks_per_hour", "workflows_per_hour"},
          "coordination_success_rate": float | None,   # completed with 0 human interventions / finished
          "attempt_success": {"succeeded", "failed", "success_rate"},   # attempts, failures included
          "success_by_role": [{"role", "succeeded", "failed", "success_rate"}],
          "success_by_agent": [{"agent_id", "name", "role", "succeeded", "failed", "success_rate"}],
          "workflows_finished": int, "workflows_completed_unaided": int,
          "cycle_time": {"workflow": {"p50", "p95", "count"}, "task": {"p50", "p95", "count"}},  # seconds
          "handoff_latency": {"p50", "p95", "count"},                                              # seconds
          "review_rounds_per_change": float | None,
          "rework_rate": float | None,
          "utilisation_by_role": [{"role", "agents", "busy_seconds", "utilisation"}],
          "tokens_cost_by_role": [{"role", "tokens_in", "tokens_out", "cost_usd": Decimal, "tasks_completed"}],
          "tokens_cost_by_agent": [{"agent_id", "name", "role", "runtime", "simulated", "tokens_in",
                                    "tokens_out", "cost_usd": Decimal, "tasks_completed"}],
          "totals": {"tokens_in", "tokens_out", "cost_usd": Decimal},
          "human_wait": {"decisions", "total_seconds", "p50"},
          "patterns": [{"pattern", "status", "count"}],   # workflows created in the window
          "simulated_share": {"tasks_completed", "estimate_hours", "busy_time", ...},
          "definitions": {name: text},
        }

    Rates and shares are None when there is nothing to divide by; nothing is invented.
    """
    start, now = window_bounds(window)
    span = _span_seconds(start, now)
    figures = rollups.window_figures(start)
    groups, flow = figures["groups"], figures["flow"]
    totals = rollups.totals(groups)[None]
    by_role = rollups.totals(groups, "role")
    by_agent = rollups.totals(groups, "agent_id")
    by_agent.pop(0, None)  # work no agent did (cancelled before it was claimed)
    agents_by_role: dict[str, set[int]] = {}
    for group in groups:
        if group.get("worked") and group["agent_id"]:
            agents_by_role.setdefault(group["role"], set()).add(group["agent_id"])
    agents = {a["id"]: a for a in Agent.objects.filter(pk__in=list(by_agent)).values("id", "name", "role", "runtime")}
    waits = Decision.objects.filter(
        _in_window("answered_at", start), status__in=[Decision.Status.ANSWERED, Decision.Status.EXPIRED]
    )
    wait_pct = duration_percentiles(waits, start="created_at", end="answered_at")
    pattern_rows = list(
        Workflow.objects.filter(**({"created_at__gte": start} if start else {}))
        .values("pattern", "status")
        .annotate(count=Count("pk"))
        .order_by("pattern", "status")
    )
    hours = span / 3600
    role_rows = [by_role[role] for role in sorted(by_role) if by_role[role]["finished"]]
    agent_rows = sorted(
        (row for agent_id, row in by_agent.items() if row["finished"] and agent_id in agents),
        key=lambda row: (-row["cost"], row["agent_id"]),
    )[:100]
    attempted = [(key, row) for key, row in by_agent.items() if row["attempts_succeeded"] or row["attempts_failed"]]
    return {
        "window": window,
        "start": start.isoformat() if start else None,
        "end": now.isoformat(),
        "span_hours": round(hours, 3),
        "throughput": {
            "tasks_completed": totals["completed"],
            "tasks_failed": totals["failed"],
            "tasks_cancelled": totals["cancelled"],
            "attempts_failed": totals["attempts_failed"],
            "workflows_completed": flow["workflows_completed"],
            "tasks_per_hour": round(totals["completed"] / hours, 3) if hours else None,
            "workflows_per_hour": round(flow["workflows_completed"] / hours, 3) if hours else None,
        },
        "coordination_success_rate": _share(flow["workflows_unaided"], flow["workflows_finished"]),
        "attempt_success": success(totals["attempts_succeeded"], totals["attempts_failed"]),
        "success_by_role": [
            {"role": role, **success(row["attempts_succeeded"], row["attempts_failed"])}
            for role, row in sorted(by_role.items())
            if row["attempts_succeeded"] or row["attempts_failed"]
        ],
        "success_by_agent": sorted(
            (
                {
                    "agent_id": agent_id,
                    "name": agents[agent_id]["name"],
                    "role": agents[agent_id]["role"],
                    **success(row["attempts_succeeded"], row["attempts_failed"]),
                }
                for agent_id, row in attempted
                if agent_id in agents
            ),
            key=lambda row: (row["success_rate"], row["agent_id"]),
        )[:100],
        "workflows_finished": flow["workflows_finished"],
        "workflows_completed_unaided": flow["workflows_unaided"],
        "cycle_time": {
            "workflow": duration_percentiles(
                Workflow.objects.filter(_in_window("completed_at", start), status=Workflow.Status.COMPLETED),
                start="created_at",
                end="completed_at",
            ),
            "task": duration_percentiles(
                Task.objects.filter(_in_window("finished_at", start), status=Task.Status.COMPLETED),
                start="started_at",
                end="finished_at",
            ),
        },
        "handoff_latency": handoff_latency(start=start),
        "review_rounds_per_change": (
            round(flow["review_visits"] / flow["reviewed_workflows"], 3) if flow["reviewed_workflows"] else None
        ),
        "rework_rate": _share(totals["rework"], totals["finished"]),
        "utilisation_by_role": [
            {
                "role": r["role"],
                "agents": len(agents_by_role.get(r["role"], ())),
                "busy_seconds": round(r["busy_seconds"], 1),
                "utilisation": (
                    round(r["busy_seconds"] / (span * len(agents_by_role[r["role"]])), 4)
                    if span and agents_by_role.get(r["role"])
                    else None
                ),
            }
            for r in role_rows
        ],
        "tokens_cost_by_role": [
            {
                "role": r["role"],
                "tokens_in": r["tokens_in"],
                "tokens_out": r["tokens_out"],
                "cost_usd": Decimal(r["cost"]),
                "tasks_completed": r["completed"],
            }
            for r in role_rows
        ],
        "tokens_cost_by_agent": [
            {
                "agent_id": r["agent_id"],
                "name": agents[r["agent_id"]]["name"],
                "role": agents[r["agent_id"]]["role"],
                "runtime": agents[r["agent_id"]]["runtime"],
                "simulated": agents[r["agent_id"]]["runtime"] == Agent.Runtime.SCRIPTED,
                "tokens_in": r["tokens_in"],
                "tokens_out": r["tokens_out"],
                "cost_usd": Decimal(r["cost"]),
                "tasks_completed": r["completed"],
            }
            for r in agent_rows
        ],
        "totals": {
            "tokens_in": totals["tokens_in"],
            "tokens_out": totals["tokens_out"],
            "cost_usd": Decimal(totals["cost"]),
        },
        "human_wait": {
            "decisions": flow["decisions_waited"],
            "total_seconds": round(flow["wait_seconds"], 1),
            **wait_pct,
        },
        "patterns": pattern_rows,
        "simulated_share": _simulated_share(totals),
        "definitions": METRIC_DEFINITIONS,
    }


METRIC_DEFINITIONS = {
    "coordination_success_rate": "workflows completed with 0 human interventions / workflows finished "
    "(completed, failed or cancelled) in the window",
    "cycle_time.workflow": "completed_at - created_at of workflows completed in the window",
    "cycle_time.task": "finished_at - started_at of tasks completed in the window",
    "handoff_latency": "started_at of a task - finished_at of the previous task of the same workflow",
    "review_rounds_per_change": "review tasks / completed workflows that had a review",
    "attempt_success": "succeeded attempts / attempts that ended in the window (succeeded, failed, or "
    "reclaimed when their lease ran out); a failed attempt counts even when the task was later finished",
    "success_by_role": "attempt_success per role of the attempted task",
    "success_by_agent": "attempt_success per agent that made the attempt (lowest first)",
    "rework_rate": "tasks with round > 1 or attempt > 1 / tasks finished in the window",
    "utilisation": "busy time (finished_at - started_at of completed or failed tasks) / "
    "(window span x agents of the role that worked in it)",
    "human_wait": "answered_at - created_at of decisions answered or expired in the window",
    "simulated_share": "part of the completed work whose task ran on a scripted (simulated) runtime",
}


def agent_performance(*, agent: Agent, window: str) -> dict[str, Any]:
    """One agent's record in `window`. Three queries.

    Failures are the agent's failed (or reclaimed) attempts, so work it failed that another agent or a
    human finished still counts against its success rate: succeeded / (succeeded + failed) attempts.

    Returns ``{"agent_id", "name", "role", "runtime", "simulated", "window", "completed",
    "attempts_succeeded", "failed", "success_rate": float | None, "utilisation": float | None,
    "busy_seconds", "tokens_in", "tokens_out", "cost_usd": Decimal, "avg_duration_seconds": float | None,
    "recent_tasks": [{"id", "title", "step", "status", "outcome", "started_at", "finished_at", "cost_usd"}]}``.
    """
    start, now = window_bounds(window)
    window_start = start
    tasks = Task.objects.filter(_in_window("finished_at", start), agent=agent)
    worked = Q(status__in=TASK_WORKED, started_at__isnull=False)
    row = tasks.aggregate(
        completed=Count("pk", filter=Q(status=Task.Status.COMPLETED)),
        busy=Coalesce(Sum(seconds_between("started_at", "finished_at"), filter=worked), Value(0.0)),
        worked=Count("pk", filter=worked),
        tokens_in=Coalesce(Sum("tokens_in"), Value(0)),
        tokens_out=Coalesce(Sum("tokens_out"), Value(0)),
        cost=Coalesce(Sum("cost_usd"), Value(ZERO), output_field=DEC),
    )
    if start is None:
        start = agent.created_at
    span = max((now - start).total_seconds(), 0.0)
    recent = list(
        tasks.order_by("-finished_at", "-id").values(
            "id", "title", "step", "status", "outcome", "started_at", "finished_at", "cost_usd"
        )[:10]
    )
    for item in recent:
        item["started_at"] = item["started_at"].isoformat() if item["started_at"] else None
        item["finished_at"] = item["finished_at"].isoformat() if item["finished_at"] else None
    outcome = success_by(attempt_outcomes(window_start, agent_id=agent.pk), "agent_id").get(agent.pk, success(0, 0))
    return {
        "agent_id": agent.pk,
        "name": agent.name,
        "role": agent.role,
        "runtime": agent.runtime,
        "simulated": agent.is_simulated,
        "window": window,
        "completed": row["completed"],
        "attempts_succeeded": outcome["succeeded"],
        "failed": outcome["failed"],
        "success_rate": outcome["success_rate"],
        "utilisation": round(row["busy"] / (span * agent.concurrency), 4) if span else None,
        "busy_seconds": round(row["busy"], 1),
        "tokens_in": row["tokens_in"],
        "tokens_out": row["tokens_out"],
        "cost_usd": Decimal(row["cost"]),
        "avg_duration_seconds": round(row["busy"] / row["worked"], 1) if row["worked"] else None,
        "recent_tasks": recent,
    }
