"""Aggregates several figures share: the totals of the tasks finished in a window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce

from coordination.models import Task, TaskAttempt

from .windows import (
    DEC,
    TASK_WORKED,
    ZERO,
    _in_window,
    _share,
    seconds_between,
)


def _task_totals(start: datetime | None, *, end: datetime | None = None, session=None) -> dict[str, Any]:
    """One query over tasks finished in the window (task_finished_idx), before `end`, of `session` if given."""
    completed = Q(status=Task.Status.COMPLETED)
    worked = Q(status__in=TASK_WORKED, started_at__isnull=False)
    rows = Task.objects.filter(_in_window("finished_at", start))
    if end is not None:
        rows = rows.filter(finished_at__lt=end)
    if session is not None:
        rows = rows.filter(session=session)
    row = rows.aggregate(
        finished=Count("pk"),
        completed=Count("pk", filter=completed),
        failed=Count("pk", filter=Q(status=Task.Status.FAILED)),
        cancelled=Count("pk", filter=Q(status=Task.Status.CANCELLED)),
        rework=Count("pk", filter=Q(round__gt=1) | Q(attempt__gt=1)),
        simulated_completed=Count("pk", filter=completed & Q(simulated=True)),
        estimate_hours=Coalesce(Sum("human_estimate_hours", filter=completed), Value(ZERO), output_field=DEC),
        simulated_estimate_hours=Coalesce(
            Sum("human_estimate_hours", filter=completed & Q(simulated=True)), Value(ZERO), output_field=DEC
        ),
        busy_seconds=Coalesce(Sum(seconds_between("started_at", "finished_at"), filter=worked), Value(0.0)),
        simulated_busy_seconds=Coalesce(
            Sum(seconds_between("started_at", "finished_at"), filter=worked & Q(simulated=True)), Value(0.0)
        ),
        tokens_in=Coalesce(Sum("tokens_in"), Value(0)),
        tokens_out=Coalesce(Sum("tokens_out"), Value(0)),
        cost=Coalesce(Sum("cost_usd"), Value(ZERO), output_field=DEC),
        simulated_cost=Coalesce(Sum("cost_usd", filter=Q(simulated=True)), Value(ZERO), output_field=DEC),
        first_started=Min("started_at", filter=worked),
        last_finished=Max("finished_at", filter=worked),
    )
    return row


def _simulated_share(totals: dict[str, Any]) -> dict[str, Any]:
    return {
        "tasks_completed": _share(totals["simulated_completed"], totals["completed"]),
        "estimate_hours": _share(totals["simulated_estimate_hours"], totals["estimate_hours"]),
        "busy_time": _share(totals["simulated_busy_seconds"], totals["busy_seconds"]),
        "simulated_tasks_completed": totals["simulated_completed"],
        "note": "share of the work produced by scripted (simulated) runtimes",
    }


# Attempts that ended without success: the runtime failed, or its lease ran out (reclaimed).
# A handed-back attempt (the agent was paused or went offline by an operator's hand) is neither.
ATTEMPT_FAILED = (TaskAttempt.Status.FAILED, TaskAttempt.Status.RECLAIMED)
ATTEMPT_SUCCEEDED = TaskAttempt.Status.SUCCEEDED


def attempt_outcomes(start: datetime | None, *, agent_id: int | None = None) -> list[dict[str, Any]]:
    """Succeeded and failed attempts ended in the window, per (role, agent). One query.

    Returns ``[{"role", "agent_id", "name", "succeeded", "failed"}]``; a failed attempt counts against the agent
    that made it even when another agent (or a human) later finished the task.
    """
    attempts = TaskAttempt.objects.filter(
        _in_window("finished_at", start), status__in=(ATTEMPT_SUCCEEDED, *ATTEMPT_FAILED)
    )
    if agent_id is not None:
        attempts = attempts.filter(agent_id=agent_id)
    rows = (
        attempts.values("task__role", "agent_id", "agent__name")
        .annotate(
            succeeded=Count("pk", filter=Q(status=ATTEMPT_SUCCEEDED)),
            failed=Count("pk", filter=Q(status__in=ATTEMPT_FAILED)),
        )
        .order_by()
    )
    return [
        {
            "role": r["task__role"],
            "agent_id": r["agent_id"],
            "name": r["agent__name"] or "",
            "succeeded": r["succeeded"],
            "failed": r["failed"],
        }
        for r in rows
    ]


def success(succeeded: int, failed: int) -> dict[str, Any]:
    """``{"succeeded", "failed", "success_rate"}``: succeeded / (succeeded + failed) attempts, None if none."""
    return {"succeeded": succeeded, "failed": failed, "success_rate": _share(succeeded, succeeded + failed)}


def success_by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    """Attempt outcomes summed per `key` ("role" or "agent_id")."""
    sums: dict[Any, list[int]] = {}
    for row in rows:
        pair = sums.setdefault(row[key], [0, 0])
        pair[0] += row["succeeded"]
        pair[1] += row["failed"]
    return {k: success(s, f) for k, (s, f) in sums.items()}
