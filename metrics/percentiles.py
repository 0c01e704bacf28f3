"""Percentiles of durations: PostgreSQL's percentile_cont, or a bounded sample elsewhere (SQLite)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, F, QuerySet, Window
from django.db.models.functions import Lag

from coordination.models import Task

from .windows import PERCENTILE_SAMPLE, PercentileCont, _in_window, seconds_between


def _interpolate(values: list[float], p: float) -> float:
    """Same definition as percentile_cont: linear interpolation between sorted values."""
    position = (len(values) - 1) * p
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _summary(values: list[float]) -> dict[str, Any]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"p50": None, "p95": None, "count": 0}
    return {"p50": _round(_interpolate(values, 0.5)), "p95": _round(_interpolate(values, 0.95)), "count": len(values)}


def duration_percentiles(queryset: QuerySet, *, start: str, end: str) -> dict[str, Any]:
    """p50/p95 (seconds) and count of `end - start` over the rows of `queryset`. One query."""
    queryset = queryset.filter(**{f"{start}__isnull": False, f"{end}__isnull": False})
    expr = seconds_between(start, end)
    if connection.vendor == "postgresql":
        row = queryset.aggregate(
            p50=PercentileCont(expr, percentile=0.5), p95=PercentileCont(expr, percentile=0.95), count=Count("pk")
        )
        return {"p50": _round(row["p50"]), "p95": _round(row["p95"]), "count": row["count"]}
    values = queryset.annotate(_seconds=expr).order_by(f"-{end}").values_list("_seconds", flat=True)
    return _summary(list(values[:PERCENTILE_SAMPLE]))


def handoff_latency(*, start: datetime | None, tasks: QuerySet[Task] | None = None) -> dict[str, Any]:
    """p50/p95 seconds from a task's predecessor (same workflow, previous id) finishing to it starting.

    Over every task started in the window, or over `tasks` (e.g. one session's) when given.
    """
    inner = (
        (Task.objects.all() if tasks is None else tasks)
        .filter(_in_window("started_at", start))
        .annotate(prev_finished=Window(Lag("finished_at"), partition_by=[F("workflow_id")], order_by=F("id").asc()))
        .values("started_at", "prev_finished")
    )
    if connection.vendor == "postgresql":
        sql, params = inner.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY d), count(d) FROM ("
                " SELECT EXTRACT(EPOCH FROM (s.started_at - s.prev_finished))::float8 AS d"
                f" FROM ({sql}) s WHERE s.prev_finished IS NOT NULL AND s.started_at >= s.prev_finished) q",
                params,
            )
            p50, p95, count = cursor.fetchone()
        return {"p50": _round(p50), "p95": _round(p95), "count": count}
    rows = list(inner.order_by("-id")[:PERCENTILE_SAMPLE])
    return _summary(
        [
            (r["started_at"] - r["prev_finished"]).total_seconds()
            for r in rows
            if r["prev_finished"] is not None and r["started_at"] >= r["prev_finished"]
        ]
    )
