"""Read-only metrics and business value, computed from recorded rows.

Every figure here is an aggregate of task, workflow and decision rows in a time
window; nothing is a constant. Sums and counts run in the database; percentiles
use PostgreSQL's ``percentile_cont`` there and a bounded sample elsewhere (SQLite).
Each public function runs a fixed number of queries whatever the row count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DecimalField,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Cast, Coalesce, Lag
from django.utils import timezone

from agents.models import Agent
from coordination.exceptions import DomainError
from coordination.models import Decision, Session, Task, TaskAttempt, Workflow

from . import outcomes
from .models import ValueAssumptions

WINDOWS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "all": None,
}
# Rows read into Python for a percentile where the database has no percentile_cont.
PERCENTILE_SAMPLE = 20_000
# Annualising less than this much recorded work would extrapolate noise.
MIN_ANNUALISE_SPAN_HOURS = Decimal("1")
TASK_WORKED = (Task.Status.COMPLETED, Task.Status.FAILED)
ZERO = Decimal("0")
CENT = Decimal("0.01")


# --- expressions -------------------------------------------------------------------


class Epoch(Func):
    """Seconds since the epoch of a datetime column, as a float, on PostgreSQL and SQLite."""

    output_field = FloatField()

    def as_postgresql(self, compiler, conn, **extra):
        return self.as_sql(compiler, conn, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", **extra)

    def as_sqlite(self, compiler, conn, **extra):
        return self.as_sql(compiler, conn, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)", **extra)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate ``percentile_cont(p) WITHIN GROUP (ORDER BY x)``."""

    function = "percentile_cont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, percentile: float, **extra):
        super().__init__(expression, percentile=float(percentile), **extra)


def seconds_between(start: str, end: str) -> Func:
    return Epoch(F(end)) - Epoch(F(start))


# --- windows -----------------------------------------------------------------------


def window_bounds(window: str, *, now: datetime | None = None) -> tuple[datetime | None, datetime]:
    """(start, now) of a named window; start is None for "all". Raises DomainError(field="window")."""
    if window not in WINDOWS:
        raise DomainError(f"unknown window {window!r}; choose one of {', '.join(WINDOWS)}", field="window")
    now = now or timezone.now()
    span = WINDOWS[window]
    return (now - span if span else None), now


def _span_seconds(start: datetime | None, now: datetime) -> float:
    """Length of the window; for "all", since the first session was created (0 when there is none)."""
    if start is None:
        first = Session.objects.aggregate(first=Min("created_at"))["first"]
        if first is None:
            return 0.0
        start = first
    return max((now - start).total_seconds(), 0.0)


def _in_window(field: str, start: datetime | None) -> Q:
    return Q(**{f"{field}__gte": start}) if start is not None else Q(**{f"{field}__isnull": False})


# --- percentiles -------------------------------------------------------------------


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


# --- shared aggregates ---------------------------------------------------------------

DEC = DecimalField(max_digits=20, decimal_places=6)


def _task_totals(start: datetime | None) -> dict[str, Any]:
    """One query over tasks finished in the window (task_finished_idx)."""
    completed = Q(status=Task.Status.COMPLETED)
    worked = Q(status__in=TASK_WORKED, started_at__isnull=False)
    row = Task.objects.filter(_in_window("finished_at", start)).aggregate(
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


def _share(part, whole) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def _simulated_share(totals: dict[str, Any]) -> dict[str, Any]:
    return {
        "tasks_completed": _share(totals["simulated_completed"], totals["completed"]),
        "estimate_hours": _share(totals["simulated_estimate_hours"], totals["estimate_hours"]),
        "busy_time": _share(totals["simulated_busy_seconds"], totals["busy_seconds"]),
        "simulated_tasks_completed": totals["simulated_completed"],
        "note": "share of the work produced by scripted (simulated) runtimes",
    }


def _money(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


def _hours(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


# --- coordination metrics ---------------------------------------------------------------


def coordination_metrics(*, window: str) -> dict[str, Any]:
    """How well the crew coordinates in `window` ("1h", "24h", "7d", "all"). Eleven queries ("all": twelve).

    Returns::

        {
          "window": "24h", "start": iso | None, "end": iso, "span_hours": float,
          "throughput": {"tasks_completed", "tasks_failed", "tasks_cancelled", "workflows_completed",
                         "tasks_per_hour", "workflows_per_hour"},
          "coordination_success_rate": float | None,   # completed with 0 human interventions / finished
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
            "workflows_completed": wf["completed"],
            "tasks_per_hour": round(totals["completed"] / hours, 3) if hours else None,
            "workflows_per_hour": round(wf["completed"] / hours, 3) if hours else None,
        },
        "coordination_success_rate": _share(wf["unaided"], wf["finished"]),
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
    "rework_rate": "tasks with round > 1 or attempt > 1 / tasks finished in the window",
    "utilisation": "busy time (finished_at - started_at of completed or failed tasks) / "
    "(window span x agents of the role that worked in it)",
    "human_wait": "answered_at - created_at of decisions answered or expired in the window",
    "simulated_share": "part of the completed work whose task ran on a scripted (simulated) runtime",
}


# --- business value -----------------------------------------------------------------------


def business_value(*, window: str) -> dict[str, Any]:
    """What the recorded work in `window` is worth under the operator's assumptions. Three queries.

    Returns::

        {
          "window", "start", "end",
          "hours_saved": Decimal, "crew_hours": Decimal, "human_hours_spent": Decimal,
          "productivity_gain": float | None, "cost_usd": Decimal, "value": Decimal, "net_value": Decimal,
          "annualised_value_per_developer": Decimal | None, "currency": "USD",
          "inputs": {"human_estimate_hours", "tasks_completed", "decisions_answered", "crew_seconds",
                     "cost_usd", "span_hours", "first_started", "last_finished"},
          "assumptions": {"currency", "hourly_rate", "working_hours_per_year", "team_size",
                          "human_review_minutes_per_decision", "updated_at"},
          "formulas": {name: text},
          "simulated_share": {...},
        }

    Decimals are money or hours rounded to cents; None means "not enough recorded work to say".
    """
    start, now = window_bounds(window)
    assumptions = ValueAssumptions.current()
    totals = _task_totals(start)
    decisions_answered = Decision.objects.filter(
        _in_window("answered_at", start), status=Decision.Status.ANSWERED
    ).count()

    estimate = Decimal(totals["estimate_hours"])
    human_hours = Decimal(decisions_answered) * Decimal(assumptions.human_review_minutes_per_decision) / 60
    hours_saved = estimate - human_hours
    crew_hours = Decimal(str(totals["busy_seconds"])) / 3600
    cost = Decimal(totals["cost"])
    value = hours_saved * assumptions.hourly_rate
    net_value = value - cost
    span_hours = ZERO
    if totals["first_started"] and totals["last_finished"]:
        span_hours = Decimal(str((totals["last_finished"] - totals["first_started"]).total_seconds())) / 3600
    annualised = None
    if span_hours >= MIN_ANNUALISE_SPAN_HOURS:
        annualised = _money(net_value * assumptions.working_hours_per_year / span_hours / assumptions.team_size)
    return {
        "window": window,
        "start": start.isoformat() if start else None,
        "end": now.isoformat(),
        "currency": assumptions.currency,
        "hours_saved": _hours(hours_saved),
        "crew_hours": _hours(crew_hours),
        "human_hours_spent": _hours(human_hours),
        "productivity_gain": round(float(estimate / crew_hours), 3) if crew_hours > 0 else None,
        "cost_usd": _money(cost),
        "value": _money(value),
        "net_value": _money(net_value),
        "annualised_value_per_developer": annualised,
        "inputs": {
            "human_estimate_hours": _hours(estimate),
            "tasks_completed": totals["completed"],
            "decisions_answered": decisions_answered,
            "crew_seconds": round(totals["busy_seconds"], 1),
            "cost_usd": Decimal(totals["cost"]),
            "span_hours": _hours(span_hours),
            "first_started": totals["first_started"].isoformat() if totals["first_started"] else None,
            "last_finished": totals["last_finished"].isoformat() if totals["last_finished"] else None,
        },
        "assumptions": {
            "currency": assumptions.currency,
            "hourly_rate": assumptions.hourly_rate,
            "working_hours_per_year": assumptions.working_hours_per_year,
            "team_size": assumptions.team_size,
            "human_review_minutes_per_decision": assumptions.human_review_minutes_per_decision,
            "updated_at": assumptions.updated_at.isoformat() if assumptions.updated_at else None,
        },
        "formulas": BUSINESS_FORMULAS,
        "simulated_share": _simulated_share(totals),
    }


BUSINESS_FORMULAS = {
    "human_hours_spent": "decisions answered by a human × human_review_minutes_per_decision / 60",
    "hours_saved": "Σ human_estimate_hours of tasks completed in the window − human_hours_spent",
    "crew_hours": "Σ (finished_at − started_at) of tasks completed or failed in the window",
    "productivity_gain": "Σ human_estimate_hours of completed tasks / crew_hours (None when crew_hours is 0)",
    "cost_usd": "Σ cost_usd of tasks finished in the window, as reported by their runtimes",
    "value": "hours_saved × hourly_rate",
    "net_value": "value − cost_usd",
    "annualised_value_per_developer": "net_value × working_hours_per_year / span_hours / team_size, "
    "where span_hours = last finished_at − first started_at of the window's recorded work "
    f"(None when span_hours < {MIN_ANNUALISE_SPAN_HOURS})",
}


# --- series and breakdowns -------------------------------------------------------------------


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
    """Spend per role in `window`, most expensive first. One query.

    Returns ``[{"role", "tokens_in", "tokens_out", "cost_usd": Decimal, "tasks": int, "simulated_tasks": int}]``.
    """
    start, _ = window_bounds(window)
    rows = (
        Task.objects.filter(_in_window("finished_at", start))
        .values("role")
        .annotate(
            tokens_in=Coalesce(Sum("tokens_in"), Value(0)),
            tokens_out=Coalesce(Sum("tokens_out"), Value(0)),
            cost=Coalesce(Sum("cost_usd"), Value(ZERO), output_field=DEC),
            tasks=Count("pk"),
            simulated_tasks=Count("pk", filter=Q(simulated=True)),
        )
        .order_by("-cost", "role")
    )
    return [
        {
            "role": r["role"],
            "tokens_in": r["tokens_in"],
            "tokens_out": r["tokens_out"],
            "cost_usd": Decimal(r["cost"]),
            "tasks": r["tasks"],
            "simulated_tasks": r["simulated_tasks"],
        }
        for r in rows
    ]


def agent_performance(*, agent: Agent, window: str) -> dict[str, Any]:
    """One agent's record in `window`. Three queries.

    Failures are the agent's failed attempts, so work it failed that another agent or a
    human finished still counts against its success rate.

    Returns ``{"agent_id", "name", "role", "runtime", "simulated", "window", "completed", "failed",
    "success_rate": float | None, "utilisation": float | None, "busy_seconds", "tokens_in", "tokens_out",
    "cost_usd": Decimal, "avg_duration_seconds": float | None,
    "recent_tasks": [{"id", "title", "step", "status", "outcome", "started_at", "finished_at", "cost_usd"}]}``.
    """
    start, now = window_bounds(window)
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
    failed = TaskAttempt.objects.filter(
        _in_window("finished_at", start), agent=agent, status=TaskAttempt.Status.FAILED
    ).count()
    done = row["completed"] + failed
    return {
        "agent_id": agent.pk,
        "name": agent.name,
        "role": agent.role,
        "runtime": agent.runtime,
        "simulated": agent.is_simulated,
        "window": window,
        "completed": row["completed"],
        "failed": failed,
        "success_rate": _share(row["completed"], done),
        "utilisation": round(row["busy"] / (span * agent.concurrency), 4) if span else None,
        "busy_seconds": round(row["busy"], 1),
        "tokens_in": row["tokens_in"],
        "tokens_out": row["tokens_out"],
        "cost_usd": Decimal(row["cost"]),
        "avg_duration_seconds": round(row["busy"] / row["worked"], 1) if row["worked"] else None,
        "recent_tasks": recent,
    }
