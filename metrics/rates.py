"""How well the crew coordinates in a window: throughput, success rates, cycle times, cost by role and agent."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce

from agents.models import Agent
from coordination.models import Decision, Task, Workflow

from . import outcomes
from .percentiles import duration_percentiles, handoff_latency
from .totals import _simulated_share, _task_totals, attempt_outcomes, success, success_by
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
    totals = _task_totals(start)
    attempts = attempt_outcomes(start)
    by_role = success_by(attempts, "role")
    names = {row["agent_id"]: (row["name"], row["role"]) for row in attempts}

    finished_wf = Workflow.objects.filter(_in_window("completed_at", start)).filter(outcomes.FINISHED)
    wf = finished_wf.aggregate(
        finished=Count("pk"),
        completed=Count("pk", filter=Q(status=Workflow.Status.COMPLETED)),
        unaided=Count("pk", filter=outcomes.DELIVERED_UNAIDED),
    )
    review = Task.objects.filter(
        step="review", workflow__status=Workflow.Status.COMPLETED, **_workflow_window(start)
    ).aggregate(visits=Count("pk"), workflows=Count("workflow", distinct=True))

    role_rows = list(
        Task.objects.filter(_in_window("finished_at", start))
        .values("role")
        .annotate(
            agents=Count("agent", distinct=True, filter=Q(status__in=TASK_WORKED)),
            busy=Coalesce(
                Sum(
                    seconds_between("started_at", "finished_at"),
                    filter=Q(status__in=TASK_WORKED, started_at__isnull=False),
                ),
                Value(0.0),
            ),
            tokens_in=Coalesce(Sum("tokens_in"), Value(0)),
            tokens_out=Coalesce(Sum("tokens_out"), Value(0)),
            cost=Coalesce(Sum("cost_usd"), Value(ZERO), output_field=DEC),
            completed=Count("pk", filter=Q(status=Task.Status.COMPLETED)),
        )
        .order_by("role")
    )
    agent_rows = list(
        Task.objects.filter(_in_window("finished_at", start), agent__isnull=False)
        .values("agent_id", "agent__name", "agent__role", "agent__runtime")
        .annotate(
            tokens_in=Coalesce(Sum("tokens_in"), Value(0)),
            tokens_out=Coalesce(Sum("tokens_out"), Value(0)),
            cost=Coalesce(Sum("cost_usd"), Value(ZERO), output_field=DEC),
            completed=Count("pk", filter=Q(status=Task.Status.COMPLETED)),
        )
        .order_by("-cost", "agent_id")[:100]
    )
    waits = Decision.objects.filter(
        _in_window("answered_at", start), status__in=[Decision.Status.ANSWERED, Decision.Status.EXPIRED]
    )
    wait_total = waits.aggregate(
        n=Count("pk"), total=Coalesce(Sum(seconds_between("created_at", "answered_at")), Value(0.0))
    )
    wait_pct = duration_percentiles(waits, start="created_at", end="answered_at")
    pattern_rows = list(
        Workflow.objects.filter(**({"created_at__gte": start} if start else {}))
        .values("pattern", "status")
        .annotate(count=Count("pk"))
        .order_by("pattern", "status")
    )
    hours = span / 3600
    return {
        "window": window,
        "start": start.isoformat() if start else None,
        "end": now.isoformat(),
        "span_hours": round(hours, 3),
        "throughput": {
            "tasks_completed": totals["completed"],
            "tasks_failed": totals["failed"],
            "tasks_cancelled": totals["cancelled"],
            "attempts_failed": sum(row["failed"] for row in attempts),
            "workflows_completed": wf["completed"],
            "tasks_per_hour": round(totals["completed"] / hours, 3) if hours else None,
            "workflows_per_hour": round(wf["completed"] / hours, 3) if hours else None,
        },
        "coordination_success_rate": _share(wf["unaided"], wf["finished"]),
        "attempt_success": success(sum(r["succeeded"] for r in attempts), sum(r["failed"] for r in attempts)),
        "success_by_role": [{"role": role, **figures} for role, figures in sorted(by_role.items())],
        "success_by_agent": sorted(
            (
                {"agent_id": agent_id, "name": names[agent_id][0], "role": names[agent_id][1], **figures}
                for agent_id, figures in success_by(attempts, "agent_id").items()
                if agent_id is not None
            ),
            key=lambda row: (row["success_rate"] if row["success_rate"] is not None else 2, row["agent_id"]),
        )[:100],
        "workflows_finished": wf["finished"],
        "workflows_completed_unaided": wf["unaided"],
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
        "review_rounds_per_change": round(review["visits"] / review["workflows"], 3) if review["workflows"] else None,
        "rework_rate": _share(totals["rework"], totals["finished"]),
        "utilisation_by_role": [
            {
                "role": r["role"],
                "agents": r["agents"],
                "busy_seconds": round(r["busy"], 1),
                "utilisation": round(r["busy"] / (span * r["agents"]), 4) if span and r["agents"] else None,
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
                "name": r["agent__name"],
                "role": r["agent__role"],
                "runtime": r["agent__runtime"],
                "simulated": r["agent__runtime"] == Agent.Runtime.SCRIPTED,
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
        "human_wait": {"decisions": wait_total["n"], "total_seconds": round(wait_total["total"], 1), **wait_pct},
        "patterns": pattern_rows,
        "simulated_share": _simulated_share(totals),
        "definitions": METRIC_DEFINITIONS,
    }


def _workflow_window(start: datetime | None) -> dict[str, Any]:
    return {"workflow__completed_at__gte": start} if start else {"workflow__completed_at__isnull": False}


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
