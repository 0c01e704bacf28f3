"""What counts as finished, delivered and done exactly once: the definitions, in one place.

The coordination-success figure, the objective (SLO) and the validation run all read
these, so changing what "delivered" means (e.g. merged and verified) is one edit here.
Each function takes the rows to judge (a QuerySet) and reads them; none writes.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Min, Q, QuerySet
from django.db.models.functions import Coalesce

from coordination.models import CoordinationEvent, Task, TaskAttempt, Workflow

W = Workflow.Status

# Finished: the workflow reached an end (completed_at is set).
FINISHED = Q(status__in=[W.COMPLETED, W.FAILED, W.CANCELLED])
# Delivered without a human: completed, and no human answered anything for it.
DELIVERED_UNAIDED = Q(status=W.COMPLETED, human_interventions=0)
# Waiting for a human: it can no longer be delivered without one.
ESCALATED = Q(status=W.WAITING_HUMAN)


# The moment a workflow's value counts: merged and verified (delivered_at). A workflow of a
# session without a repository is delivered when it completes successfully; until the engine
# stamps delivered_at on those, their completed_at stands in for it.
DELIVERED_AT = Coalesce(F("delivered_at"), F("completed_at"))
_COMPLETED_WITHOUT_REPOSITORY = Q(delivered_at__isnull=True, status=W.COMPLETED, session__repository="")


def delivered_in(in_range) -> Q:
    """Workflows delivered in a range, given `in_range(field) -> Q` over a datetime field. Each once."""
    return in_range("delivered_at") | (_COMPLETED_WITHOUT_REPOSITORY & in_range("completed_at"))


def first_delivered():
    """The earliest delivery time recorded, or None. One query."""
    return Workflow.objects.filter(Q(delivered_at__isnull=False) | _COMPLETED_WITHOUT_REPOSITORY).aggregate(
        first=Min(DELIVERED_AT)
    )["first"]


DEFINITIONS = {
    "workflows_finished": "workflows completed, failed or cancelled",
    "workflows_delivered": "workflows with delivered_at in the window: merged and verified, or for a session "
    "without a repository completed successfully; each is delivered once",
    "delivered_without_a_human": "workflows completed with 0 human interventions",
    "workflows_concluded": "workflows finished, or waiting for a human (no longer deliverable without one)",
    "coordination_success": "delivered without a human / concluded (a validation run) or / finished (the live figure)",
    "attempt_success": "succeeded attempts / attempts that succeeded, failed or were reclaimed (failures count "
    "even when a later attempt finished the task)",
    "duplicate_completions": "tasks with more than one succeeded attempt or more than one task_completed event",
    "tasks_assigned_twice": "tasks with two attempts running at once, or one attempt number assigned twice",
    "tasks_lost": "tasks left running with no running attempt or no live daemon, or unfinished in a finished workflow",
}


def workflows_finished(workflows: QuerySet[Workflow]) -> QuerySet[Workflow]:
    return workflows.filter(FINISHED)


def workflows_delivered_unaided(workflows: QuerySet[Workflow]) -> QuerySet[Workflow]:
    return workflows.filter(DELIVERED_UNAIDED)


def workflows_concluded(workflows: QuerySet[Workflow]) -> QuerySet[Workflow]:
    return workflows.filter(FINISHED | ESCALATED)


def coordination_success(workflows: QuerySet[Workflow], *, include_escalated: bool = False) -> dict[str, Any]:
    """Delivered without a human over finished (or over concluded, when waiting ones count). One query.

    Returns ``{"ratio": float | None, "delivered_unaided", "finished", "escalated", "denominator"}``.
    """
    row = workflows.aggregate(
        finished=Count("pk", filter=FINISHED),
        escalated=Count("pk", filter=ESCALATED),
        unaided=Count("pk", filter=DELIVERED_UNAIDED),
        running=Count("pk", filter=Q(status=W.RUNNING)),
    )
    denominator = row["finished"] + (row["escalated"] if include_escalated else 0)
    return {
        "ratio": round(row["unaided"] / denominator, 4) if denominator else None,
        "delivered_unaided": row["unaided"],
        "finished": row["finished"],
        "escalated": row["escalated"],
        "running": row["running"],
        "denominator": denominator,
    }


def duplicate_completions(tasks: QuerySet[Task]) -> list[dict[str, Any]]:
    """Tasks completed more than once: by their attempts, or by their events. Two queries."""
    by_attempts = {
        row["task_id"]: row["n"]
        for row in TaskAttempt.objects.filter(task__in=tasks, status=TaskAttempt.Status.SUCCEEDED)
        .values("task_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .order_by()
    }
    by_events = {
        row["task_id"]: row["n"]
        for row in CoordinationEvent.objects.filter(task__in=tasks, type=CoordinationEvent.Type.TASK_COMPLETED)
        .values("task_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .order_by()
    }
    return [
        {
            "task": task_id,
            "succeeded_attempts": by_attempts.get(task_id, 1),
            "completed_events": by_events.get(task_id, 1),
        }
        for task_id in sorted(by_attempts.keys() | by_events.keys())
    ]


def tasks_assigned_twice(tasks: QuerySet[Task]) -> list[dict[str, Any]]:
    """Tasks whose attempts overlapped in time (two agents at once) or repeat a number. One query."""
    found: dict[int, dict[str, Any]] = {}
    numbers: dict[int, set[int]] = {}
    # Per task, when its attempts so far ended (None while one is still open).
    ends: dict[int, Any] = {}
    rows = (
        TaskAttempt.objects.filter(task__in=tasks)
        .order_by("task_id", "started_at", "number")
        .values_list("task_id", "number", "started_at", "finished_at")
    )
    for task_id, number, started_at, finished_at in rows.iterator(chunk_size=2000):
        seen = numbers.setdefault(task_id, set())
        earlier = task_id in ends
        end = ends.get(task_id)
        if number in seen or (earlier and (end is None or end > started_at)):
            found.setdefault(task_id, {"task": task_id, "attempts": sorted(seen)})["attempts"].append(number)
        seen.add(number)
        if finished_at is None or (earlier and end is None):
            ends[task_id] = None
        else:
            ends[task_id] = max(end, finished_at) if earlier else finished_at
    return list(found.values())


def tasks_lost(tasks: QuerySet[Task], *, live_coordinator_ids: set[int]) -> list[dict[str, Any]]:
    """Tasks the crew can no longer finish by itself although nobody decided so. Two queries.

    - running, but without a running attempt, or leased by no live daemon;
    - not finished although their workflow is finished.
    """
    lost: list[dict[str, Any]] = []
    running = list(
        tasks.filter(status=Task.Status.RUNNING)
        .annotate(open_attempts=Count("attempts", filter=Q(attempts__status=TaskAttempt.Status.RUNNING)))
        .values("id", "lease_owner_id", "open_attempts")
    )
    for row in running:
        if not row["open_attempts"]:
            lost.append({"task": row["id"], "why": "running without a running attempt"})
        elif row["lease_owner_id"] not in live_coordinator_ids:
            lost.append({"task": row["id"], "why": "running on a daemon that is gone"})
    stranded = tasks.exclude(status__in=Task.FINISHED_STATUSES).filter(workflow__status__in=[W.COMPLETED, W.FAILED])
    lost.extend(
        {"task": task_id, "why": "unfinished in a finished workflow"}
        for task_id in stranded.values_list("id", flat=True)
    )
    return lost
