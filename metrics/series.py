"""Series and breakdowns the console charts: completions per time bucket, spend per role."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, IntegerField, Q, Value
from django.db.models.functions import Cast

from coordination.models import Task, Workflow

from . import rollups
from .windows import (
    TASK_WORKED,
    Epoch,
    _span_seconds,
    window_bounds,
)


def throughput_series(*, window: str, buckets: int = 24) -> list[dict[str, Any]]:
    """Completions per time bucket. Two queries (three for "all", which first finds its start).

    Returns ``[{"start": iso, "tasks_completed": int, "workflows_completed": int, "failures": int}, …]``
    with exactly `buckets` entries (1..200), oldest first; "all" spans from the first session.
    """
    buckets = max(1, min(int(buckets), 200))
    start, now = window_bounds(window)
    if start is None:
        start = now - timedelta(seconds=_span_seconds(None, now) or 3600)
    width = max((now - start).total_seconds() / buckets, 1e-6)
    origin = start.timestamp()

    def bucket(field: str):
        return Cast((Epoch(F(field)) - Value(origin)) / Value(width), IntegerField())

    series = [
        {"start": (start + timedelta(seconds=width * i)).isoformat(), "tasks_completed": 0, "workflows_completed": 0}
        | {"failures": 0}
        for i in range(buckets)
    ]
    task_rows = (
        Task.objects.filter(finished_at__gte=start, status__in=TASK_WORKED)
        .annotate(bucket=bucket("finished_at"))
        .values("bucket")
        .annotate(
            completed=Count("pk", filter=Q(status=Task.Status.COMPLETED)),
            failed=Count("pk", filter=Q(status=Task.Status.FAILED)),
        )
        .order_by()
    )
    for row in task_rows:
        index = min(max(row["bucket"], 0), buckets - 1)
        series[index]["tasks_completed"] += row["completed"]
        series[index]["failures"] += row["failed"]
    wf_rows = (
        Workflow.objects.filter(status=Workflow.Status.COMPLETED, completed_at__gte=start)
        .annotate(bucket=bucket("completed_at"))
        .values("bucket")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in wf_rows:
        series[min(max(row["bucket"], 0), buckets - 1)]["workflows_completed"] += row["n"]
    return series


def cost_by_role(*, window: str) -> list[dict[str, Any]]:
    """Spend per role in `window`, most expensive first: cost_by_role_between(window's start, now).

    Returns ``[{"role", "tokens_in", "tokens_out", "cost_usd": Decimal, "tasks": int, "simulated_tasks": int}]``.
    """
    start, now = window_bounds(window)
    return cost_by_role_between(start=start, end=now)


def cost_by_role_between(*, start: datetime | None, end: datetime | None = None, session=None) -> list[dict[str, Any]]:
    """Spend per role of tasks finished in [start, end), of `session` if given; as cost_by_role.

    Eight queries (rollups.figures_between)."""
    figures = rollups.figures_between(start=start, end=end, session=session)
    by_role = rollups.totals(figures["groups"], "role")
    rows = sorted((row for row in by_role.values() if row["finished"]), key=lambda r: (-r["cost"], r["role"]))
    return [
        {
            "role": r["role"],
            "tokens_in": r["tokens_in"],
            "tokens_out": r["tokens_out"],
            "cost_usd": Decimal(r["cost"]),
            "tasks": r["finished"],
            "simulated_tasks": r["simulated_tasks"],
        }
        for r in rows
    ]
