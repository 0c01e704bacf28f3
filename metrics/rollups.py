"""Hourly rollups: the long windows read closed hours from MetricHour and only the rest from raw rows.

How they are kept up to date: an incremental job rolls each *closed* hour once, in order,
and advances a watermark (RollupState.rolled_through) in the same transaction as that
hour's rows. Why a job over closed hours rather than writing rollups with every change:

- tasks, workflows and decisions are updated in place (a task's status, cost and finished_at
  are set when it ends), so an id watermark over them would miss changes, and events cannot
  be the source because retention prunes them;
- updating shared per-hour rows in the dispatcher's transactions would make every finishing
  task of every daemon contend for the same row lock on the hot path;
- a finished row's time column is set once, when it finishes, so an hour that closed
  ``SETTLE`` ago no longer changes; rolling it again (``rebuild``) replaces it whole.

Reads split a window at hour boundaries: [start, first whole hour) and [watermark, now) come
from raw rows (through the finished_at/completed_at/answered_at indexes), the whole hours in
between from MetricHour. Without a watermark (nothing rolled yet) everything is raw, so the
figures are the same either way; tests/metrics/test_rollups.py proves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, DateTimeField, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from coordination.models import Decision, Task, TaskAttempt, Workflow

from . import outcomes
from .models import MetricHour, RollupState
from .windows import DEC, TASK_WORKED, ZERO, seconds_between

logger = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
# An hour is rolled once it ended this long ago: rows finishing in it have been written by then.
SETTLE = timedelta(minutes=5)
# Hours rolled by one call of advance() (a backlog is caught up over several calls).
ADVANCE_BATCH = 24 * 7
# Hours a read rolls at most before reading (the rest waits for the next read or the command).
READ_BATCH = 24

TASK_FIELDS = (
    "finished",
    "completed",
    "failed",
    "cancelled",
    "rework",
    "worked",
    "timed",
    "simulated_completed",
    "simulated_tasks",
    "estimate_hours",
    "simulated_estimate_hours",
    "busy_seconds",
    "simulated_busy_seconds",
    "tokens_in",
    "tokens_out",
    "cost",
    "simulated_cost",
)
ATTEMPT_FIELDS = ("attempts_succeeded", "attempts_failed")
FLOW_FIELDS = (
    "workflows_finished",
    "workflows_completed",
    "workflows_unaided",
    "review_visits",
    "reviewed_workflows",
    "workflows_delivered",
    "delivered_estimate_hours",
    "decisions_answered",
    "decisions_waited",
    "wait_seconds",
)
SUM_FIELDS = TASK_FIELDS + ATTEMPT_FIELDS + FLOW_FIELDS
DECIMAL_FIELDS = {"estimate_hours", "simulated_estimate_hours", "cost", "simulated_cost", "delivered_estimate_hours"}
FLOAT_FIELDS = {"busy_seconds", "simulated_busy_seconds", "wait_seconds"}
# Attempts that ended without success: the runtime failed, or its lease ran out (reclaimed).
# A handed-back attempt (the agent was paused or went offline by an operator's hand) is neither.
ATTEMPT_FAILED = (TaskAttempt.Status.FAILED, TaskAttempt.Status.RECLAIMED)
ATTEMPT_SUCCEEDED = TaskAttempt.Status.SUCCEEDED


def enabled() -> bool:
    return bool(getattr(settings, "HIVE_METRIC_ROLLUPS", True))


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def zero() -> dict[str, Any]:
    return {name: (ZERO if name in DECIMAL_FIELDS else 0.0 if name in FLOAT_FIELDS else 0) for name in SUM_FIELDS} | {
        "first_started": None,
        "last_finished": None,
    }


def add(into: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    for name in SUM_FIELDS:
        if name in row and row[name] is not None:
            into[name] += Decimal(row[name]) if name in DECIMAL_FIELDS else row[name]
    for name, pick in (("first_started", min), ("last_finished", max)):
        if row.get(name) is not None:
            into[name] = row[name] if into[name] is None else pick(into[name], row[name])
    return into


# --- raw figures over any range of rows -----------------------------------------------


def _sum(expr, **extra):
    return Coalesce(Sum(expr, **extra), Value(0))


def _hour(field) -> TruncHour:
    return TruncHour(field, tzinfo=UTC, output_field=DateTimeField())


def _keys(by_hour) -> dict[str, Any]:
    return {"hour": _hour(by_hour)} if by_hour else {}


def task_groups(rows: Q, *, by_hour: bool = False) -> list[dict[str, Any]]:
    """Task figures per (role, agent), and per hour of finished_at if `by_hour`, over the tasks matching `rows`.

    One query."""
    completed = Q(status=Task.Status.COMPLETED)
    worked = Q(status__in=TASK_WORKED)
    timed = worked & Q(started_at__isnull=False)
    simulated = Q(simulated=True)
    busy = seconds_between("started_at", "finished_at")
    found = (
        Task.objects.filter(rows)
        .values("role", "agent_id", **_keys("finished_at" if by_hour else None))
        .annotate(
            finished=Count("pk"),
            completed=Count("pk", filter=completed),
            failed=Count("pk", filter=Q(status=Task.Status.FAILED)),
            cancelled=Count("pk", filter=Q(status=Task.Status.CANCELLED)),
            rework=Count("pk", filter=Q(round__gt=1) | Q(attempt__gt=1)),
            worked=Count("pk", filter=worked),
            timed=Count("pk", filter=timed),
            simulated_completed=Count("pk", filter=completed & simulated),
            simulated_tasks=Count("pk", filter=simulated),
            estimate_hours=Coalesce(Sum("human_estimate_hours", filter=completed), Value(ZERO), output_field=DEC),
            simulated_estimate_hours=Coalesce(
                Sum("human_estimate_hours", filter=completed & simulated), Value(ZERO), output_field=DEC
            ),
            busy_seconds=Coalesce(Sum(busy, filter=timed), Value(0.0)),
            simulated_busy_seconds=Coalesce(Sum(busy, filter=timed & simulated), Value(0.0)),
            tokens_in=_sum("tokens_in"),
            tokens_out=_sum("tokens_out"),
            cost=Coalesce(Sum("cost_usd"), Value(ZERO), output_field=DEC),
            simulated_cost=Coalesce(Sum("cost_usd", filter=simulated), Value(ZERO), output_field=DEC),
            first_started=Min("started_at", filter=timed),
            last_finished=Max("finished_at", filter=timed),
        )
        .order_by()
    )
    return [{**row, "agent_id": row["agent_id"] or 0} for row in found]


def attempt_groups(rows: Q, *, by_hour: bool = False) -> list[dict[str, Any]]:
    """Succeeded and failed attempts per (role of the task, agent) [and hour] over the attempts matching `rows`.

    One query."""
    found = (
        TaskAttempt.objects.filter(rows, status__in=(ATTEMPT_SUCCEEDED, *ATTEMPT_FAILED))
        .values("task__role", "agent_id", **_keys("finished_at" if by_hour else None))
        .annotate(
            attempts_succeeded=Count("pk", filter=Q(status=ATTEMPT_SUCCEEDED)),
            attempts_failed=Count("pk", filter=Q(status__in=ATTEMPT_FAILED)),
        )
        .order_by()
    )
    return [
        {
            "role": row["task__role"],
            "agent_id": row["agent_id"] or 0,
            "attempts_succeeded": row["attempts_succeeded"],
            "attempts_failed": row["attempts_failed"],
        }
        | ({"hour": row["hour"]} if by_hour else {})
        for row in found
    ]


def _flow(queryset, by_hour: str | None, **figures) -> list[dict[str, Any]]:
    if by_hour:
        return list(queryset.values(**_keys(by_hour)).annotate(**figures).order_by())
    return [queryset.aggregate(**figures)]


def flow_figures(*, workflows: Q, delivered: Q, reviews: Q, decisions: Q, by_hour: bool = False) -> list[dict]:
    """Workflow, delivery, review and decision figures over the rows matching each filter. Four queries.

    One dict of sums, or with `by_hour` one per hour of the row's time column (each with "hour").
    """
    waited = Q(status__in=[Decision.Status.ANSWERED, Decision.Status.EXPIRED])
    parts = [
        _flow(
            Workflow.objects.filter(workflows),
            by_hour and "completed_at",
            workflows_finished=Count("pk", filter=outcomes.FINISHED),
            workflows_completed=Count("pk", filter=Q(status=Workflow.Status.COMPLETED)),
            workflows_unaided=Count("pk", filter=outcomes.DELIVERED_UNAIDED),
        ),
        _flow(
            Workflow.objects.filter(delivered),
            by_hour and outcomes.DELIVERED_AT,
            workflows_delivered=Count("pk"),
            delivered_estimate_hours=Coalesce(Sum("human_estimate_hours"), Value(ZERO), output_field=DEC),
        ),
        _flow(
            Task.objects.filter(reviews, step="review", workflow__status=Workflow.Status.COMPLETED),
            by_hour and "workflow__completed_at",
            review_visits=Count("pk"),
            reviewed_workflows=Count("workflow", distinct=True),
        ),
        _flow(
            Decision.objects.filter(decisions),
            by_hour and "answered_at",
            decisions_answered=Count("pk", filter=Q(status=Decision.Status.ANSWERED)),
            decisions_waited=Count("pk", filter=waited),
            wait_seconds=Coalesce(Sum(seconds_between("created_at", "answered_at"), filter=waited), Value(0.0)),
        ),
    ]
    if not by_hour:
        return [{k: v for part in parts for k, v in part[0].items()}]
    return [row for part in parts for row in part]


def _range(field: str, ranges: Iterable[tuple[datetime | None, datetime | None]]) -> Q:
    """Rows whose `field` falls in any of the half-open [low, high) ranges (None: unbounded)."""
    q = Q(pk__in=[])
    for low, high in ranges:
        part = Q(**{f"{field}__isnull": False})
        if low is not None:
            part &= Q(**{f"{field}__gte": low})
        if high is not None:
            part &= Q(**{f"{field}__lt": high})
        q |= part
    return q


def raw_figures(
    ranges: list[tuple[datetime | None, datetime | None]], *, by_hour: bool = False, session=None
) -> dict[str, Any]:
    """Every rolled-up figure computed from raw rows over `ranges` (of `session` if given). Six queries.

    ``{"groups": [task and attempt sums per (role, agent[, hour])], "flow": [workflow, delivery, review and
    decision sums (per hour)]}``.
    """
    if not ranges:
        return {"groups": [], "flow": []}
    mine = Q(session=session) if session is not None else Q()
    groups = task_groups(_range("finished_at", ranges) & mine, by_hour=by_hour)
    theirs = Q(task__session=session) if session is not None else Q()
    groups += attempt_groups(_range("finished_at", ranges) & theirs, by_hour=by_hour)
    flow = flow_figures(
        workflows=_range("completed_at", ranges) & mine,
        delivered=outcomes.delivered_in(lambda field: _range(field, ranges)) & mine,
        reviews=_range("workflow__completed_at", ranges) & mine,
        decisions=_range("answered_at", ranges) & mine,
        by_hour=by_hour,
    )
    return {"groups": groups, "flow": flow}


# --- the job ------------------------------------------------------------------------------


def hour_rows(first: datetime, end: datetime) -> list[MetricHour]:
    """MetricHour rows of the hours in [first, end), from raw rows. Six queries."""
    figures = raw_figures([(first, end)], by_hour=True)
    rows: dict[tuple[datetime, str, int], dict[str, Any]] = {}
    for group in figures["groups"]:
        add(rows.setdefault((group["hour"], group["role"], group["agent_id"]), zero()), group)
    for flow in figures["flow"]:
        if any(v for k, v in flow.items() if k != "hour"):
            add(rows.setdefault((flow["hour"], "", 0), zero()), flow)
    return [MetricHour(hour=hour, role=role, agent_id=agent, **values) for (hour, role, agent), values in rows.items()]


def _first_hour() -> datetime | None:
    firsts = [
        Task.objects.aggregate(m=Min("finished_at"))["m"],
        TaskAttempt.objects.aggregate(m=Min("finished_at"))["m"],
        Workflow.objects.aggregate(m=Min("completed_at"))["m"],
        Decision.objects.aggregate(m=Min("answered_at"))["m"],
    ]
    delivered = outcomes.first_delivered()
    firsts.append(delivered)
    found = [moment for moment in firsts if moment is not None]
    return floor_hour(min(found)) if found else None


def advance(*, now: datetime | None = None, limit: int = ADVANCE_BATCH) -> int:
    """Roll up to `limit` closed hours after the watermark, in order. Returns the hours rolled.

    One transaction writes the hours' rows (six grouped queries for the whole batch) and moves
    the watermark past them, so a reader sees an hour either raw or rolled, never both.
    Concurrent callers skip while another one holds the state row.
    """
    now = now or timezone.now()
    closed = floor_hour(now - SETTLE)  # hours strictly before this have settled
    RollupState.objects.get_or_create(singleton=True)
    rolled = 0
    while rolled < limit:
        with transaction.atomic():
            state = RollupState.objects.select_for_update(skip_locked=True).filter(singleton=True).first()
            if state is None:
                return rolled  # another process is rolling
            hour = state.rolled_through
            if hour is None:
                hour = _first_hour()
                if hour is None:
                    return rolled
            if hour >= closed:
                if state.rolled_through is None:
                    state.rolled_through = hour
                    state.save(update_fields=["rolled_through", "updated_at"])
                return rolled
            end = min(closed, hour + HOUR * (limit - rolled))
            MetricHour.objects.filter(hour__gte=hour, hour__lt=end).delete()
            MetricHour.objects.bulk_create(hour_rows(hour, end), batch_size=2000)
            state.rolled_through = end
            state.save(update_fields=["rolled_through", "updated_at"])
        rolled += int((end - hour) / HOUR)
    return rolled


def catch_up(*, now: datetime | None = None) -> int:
    """Roll every closed hour (a backfill, e.g. after an upgrade). Returns the hours rolled."""
    total = 0
    while True:
        step = advance(now=now)
        total += step
        if step < ADVANCE_BATCH:
            return total


def rebuild(*, now: datetime | None = None) -> int:
    """Forget every rollup and roll every closed hour again from the raw rows."""
    with transaction.atomic():
        MetricHour.objects.all().delete()
        RollupState.objects.update_or_create(singleton=True, defaults={"rolled_through": None})
    return catch_up(now=now)


def watermark() -> datetime | None:
    """Every hour before this is rolled up; None when nothing is (or rollups are off). One query."""
    if not enabled():
        return None
    return RollupState.objects.filter(singleton=True).values_list("rolled_through", flat=True).first()


# --- reads ----------------------------------------------------------------------------------


def _catch_up_quietly(mark: datetime | None) -> datetime | None:
    """Roll the hours that closed since the last read (bounded); the new watermark. Reads stay right without it."""
    try:
        if advance(limit=READ_BATCH):
            return watermark()
    except DatabaseError:
        logger.warning("Rolling up metric hours failed; reading raw rows", exc_info=True)
    return mark


def window_figures(start: datetime | None) -> dict[str, Any]:
    """Rolled-up figures from `start` (None: all time) to now; see figures_between."""
    return figures_between(start=start)


def figures_between(*, start: datetime | None, end: datetime | None = None, session=None) -> dict[str, Any]:
    """Rolled-up figures of [start, end) (None: unbounded): whole closed hours from MetricHour, the rest raw.

    Returns ``{"groups": [{"role", "agent_id", <task and attempt sums>}], "flow": {<workflow, delivery,
    review and decision sums>}}``. Eight queries (the watermark, MetricHour, six raw), plus the rolling
    of any hour that closed since the last read (see advance). One session's figures (rollups are
    not kept per session) are read raw: seven queries.
    """
    if session is not None:
        raw = raw_figures([(start, end)], session=session)
        return {"groups": raw["groups"], "flow": add(zero(), raw["flow"][0])}
    mark = watermark()
    if enabled() and (mark is None or mark < floor_hour(timezone.now() - SETTLE)):
        mark = _catch_up_quietly(mark)
    first_whole = ceil_hour(start) if start is not None else None
    last_whole = mark if end is None or mark is None else min(mark, floor_hour(end))
    if mark is None or (first_whole is not None and first_whole >= last_whole):
        raw = raw_figures([(start, end)])
        return {"groups": raw["groups"], "flow": add(zero(), raw["flow"][0])}
    ranges = [(last_whole, end)]
    if start is not None and start < first_whole:
        ranges.append((start, first_whole))
    raw = raw_figures(ranges)
    rolled = MetricHour.objects.filter(hour__lt=last_whole)
    if first_whole is not None:
        rolled = rolled.filter(hour__gte=first_whole)
    sums = {name: Sum(name) for name in SUM_FIELDS}
    sums |= {"first_started": Min("first_started"), "last_finished": Max("last_finished")}
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    flow = zero()
    for row in rolled.values("role", "agent_id").annotate(**sums).order_by():
        if row["role"] == "" and row["agent_id"] == 0:
            add(flow, row)
        else:
            add(
                groups.setdefault(
                    (row["role"], row["agent_id"]), {"role": row["role"], "agent_id": row["agent_id"]} | zero()
                ),
                row,
            )
    for group in raw["groups"]:
        key = (group["role"], group["agent_id"])
        add(groups.setdefault(key, {"role": group["role"], "agent_id": group["agent_id"]} | zero()), group)
    for part in raw["flow"]:
        add(flow, part)
    return {"groups": list(groups.values()), "flow": flow}


def totals(groups: list[dict[str, Any]], key: str | None = None) -> dict[Any, dict[str, Any]]:
    """Group figures summed per `key` ("role", "agent_id"), or over everything (key None → {None: …})."""
    out: dict[Any, dict[str, Any]] = {}
    for group in groups:
        k = group[key] if key else None
        add(out.setdefault(k, zero() | ({key: k} if key else {})), group)
    if key is None and None not in out:
        out[None] = zero()
    return out
