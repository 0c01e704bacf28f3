"""Figures several reads share: attempt outcomes and success rates, the simulated share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q

from coordination.models import TaskAttempt

from .rollups import ATTEMPT_FAILED, ATTEMPT_SUCCEEDED
from .windows import _in_window, _share


def _simulated_share(totals: dict[str, Any]) -> dict[str, Any]:
    return {
        "tasks_completed": _share(totals["simulated_completed"], totals["completed"]),
        "estimate_hours": _share(totals["simulated_estimate_hours"], totals["estimate_hours"]),
        "busy_time": _share(totals["simulated_busy_seconds"], totals["busy_seconds"]),
        "simulated_tasks_completed": totals["simulated_completed"],
        "note": "share of the work produced by scripted (simulated) runtimes",
    }


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
