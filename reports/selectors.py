"""A delivery report: what the crew delivered in a period, at what cost and quality, and where humans stepped in.

Every figure comes from rows, by the formula printed next to it, and names the rows it was
computed from (`sources`), so the page's appendix, the CSV and the JSON can trace each
number. Value and cost per role come from the metrics selectors, the same computation the
overview and the API use; nothing here computes them a second time.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from coordination.models import CoordinationEvent, Decision, Task, VerificationRun, Workflow
from metrics import series as metrics_series
from metrics import value as metrics_value
from metrics.windows import _hours as _hours_rounded
from metrics.windows import _money, seconds_between

from .inputs import Period

ZERO = Decimal("0")
REVIEW_STEPS = ("review",)
TEST_STEPS = ("test",)
WORKED = (Task.Status.COMPLETED, Task.Status.FAILED)

FORMULAS = {
    "deliveries": "workflows with delivered_at in the period (merged and verified; a workflow without a "
    "repository is delivered when it completes), each counted once",
    "crew_hours": "Σ (finished_at − started_at) of the workflow's tasks that completed or failed, rework included",
    "cost_usd": "Σ cost_usd of the workflow's tasks, as reported by their runtimes",
    "review_rounds": "number of review tasks of the workflow",
    "test_rounds": "number of test tasks of the workflow",
    "first_pass_approval": "delivered workflows whose first review was approved / delivered workflows with a review",
    "test_failures_caught": "test tasks that failed in the period (each sent the work back before merge)",
    "verification_failures": "verification runs that failed in the period (claims and merged trees)",
    "conflicts": "merge_conflict events in the period",
    "decision_wait": "answered_at − created_at of each decision answered in the period",
    "cost_by_agent": "Σ cost_usd and tokens of tasks finished in the period, per agent",
}


def delivery_report(period: Period) -> dict[str, Any]:
    in_session = Q(session=period.session) if period.session is not None else Q()
    deliveries = _deliveries(period, in_session)
    delivered_ids = [row["id"] for row in deliveries]
    report = {
        "period": {
            "key": period.key,
            "label": period.label,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "session": {"id": period.session.pk, "name": period.session.name} if period.session else None,
        },
        "generated_at": timezone.now().isoformat(),
        "deliveries": deliveries,
        "totals": _totals(deliveries),
        "abandoned": _abandoned(period, in_session),
        "blocked": _blocked(in_session),
        "decisions": _decisions(period, in_session),
        "value": metrics_value.value_between(start=period.start, end=period.end, session=period.session),
        "quality": _quality(period, in_session, delivered_ids),
        "cost_by_role": metrics_series.cost_by_role_between(start=period.start, end=period.end, session=period.session),
        "cost_by_agent": _cost_by_agent(period, in_session),
        "series": _series(period, deliveries),
        "formulas": FORMULAS,
    }
    report["simulated"] = any(row["simulated"] for row in deliveries) or bool(
        report["value"]["simulated_share"].get("tasks")
    )
    return report


def _deliveries(period: Period, in_session: Q) -> list[dict[str, Any]]:
    workflows = list(
        Workflow.objects.filter(in_session, delivered_at__gte=period.start, delivered_at__lt=period.end)
        .select_related("session")
        .order_by("delivered_at", "id")
    )
    work = {
        row["workflow_id"]: row
        for row in Task.objects.filter(workflow__in=[w.pk for w in workflows])
        .values("workflow_id")
        .annotate(
            cost=Sum("cost_usd"),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            crew_seconds=Sum(seconds_between("started_at", "finished_at"), filter=Q(status__in=WORKED)),
            review_rounds=Count("id", filter=Q(step__in=REVIEW_STEPS)),
            test_rounds=Count("id", filter=Q(step__in=TEST_STEPS)),
            tasks=Count("id"),
            simulated=Count("id", filter=Q(simulated=True)),
        )
    }
    rows = []
    for workflow in workflows:
        figures = work.get(workflow.pk, {})
        rows.append(
            {
                "id": workflow.pk,
                "title": workflow.title,
                "session": workflow.session.name,
                "session_id": workflow.session_id,
                "pattern": workflow.pattern,
                "delivered_at": workflow.delivered_at.isoformat(),
                "estimate_hours": workflow.human_estimate_hours,
                "crew_hours": _hours(figures.get("crew_seconds")),
                "cost_usd": _money(figures.get("cost")),
                "tokens": int(figures.get("tokens_in") or 0) + int(figures.get("tokens_out") or 0),
                "review_rounds": figures.get("review_rounds", 0),
                "test_rounds": figures.get("test_rounds", 0),
                "tasks": figures.get("tasks", 0),
                "branch": workflow.branch,
                "merge_commit": workflow.merge_commit,
                "simulated": bool(figures.get("simulated")),
            }
        )
    return rows


def _totals(deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "deliveries": len(deliveries),
        "estimate_hours": sum((row["estimate_hours"] for row in deliveries), ZERO),
        "crew_hours": sum((row["crew_hours"] for row in deliveries), ZERO),
        "cost_usd": sum((row["cost_usd"] for row in deliveries), ZERO),
        "tokens": sum(row["tokens"] for row in deliveries),
        "sources": {"workflows": [row["id"] for row in deliveries]},
    }


def _abandoned(period: Period, in_session: Q) -> list[dict[str, Any]]:
    workflows = list(
        Workflow.objects.filter(
            in_session,
            status__in=[Workflow.Status.CANCELLED, Workflow.Status.FAILED],
            completed_at__gte=period.start,
            completed_at__lt=period.end,
        )
        .select_related("session")
        .order_by("completed_at", "id")
    )
    return _reasons(workflows)


def _blocked(in_session: Q) -> list[dict[str, Any]]:
    """Work waiting on a human now (a report is read now, whatever its period)."""
    workflows = list(
        Workflow.objects.filter(in_session, status=Workflow.Status.WAITING_HUMAN)
        .select_related("session")
        .order_by("id")
    )
    return _reasons(workflows)


def _reasons(workflows: list[Workflow]) -> list[dict[str, Any]]:
    """Why each workflow stopped or waits: its latest decision, else its latest task error. Two queries."""
    ids = [workflow.pk for workflow in workflows]
    decisions: dict[int, Decision] = {}
    for decision in Decision.objects.filter(workflow__in=ids).order_by("-created_at", "-id"):
        decisions.setdefault(decision.workflow_id, decision)
    failures: dict[int, Task] = {}
    for task in Task.objects.filter(workflow__in=ids).exclude(error="").order_by("-finished_at", "-id"):
        failures.setdefault(task.workflow_id, task)
    return [_why(workflow, decisions.get(workflow.pk), failures.get(workflow.pk)) for workflow in workflows]


def _why(workflow: Workflow, decision: Decision | None, failed: Task | None) -> dict[str, Any]:
    if decision is not None:
        reason = decision.question + (f" — answered “{decision.answer}”" if decision.answer else " — waiting")
        if decision.comment:
            reason += f": {decision.comment}"
    elif failed is not None:
        reason = f"{failed.step}: {failed.error}"
    else:
        reason = workflow.get_status_display()
    return {
        "id": workflow.pk,
        "title": workflow.title,
        "session": workflow.session.name,
        "status": workflow.status,
        "at": (workflow.completed_at or workflow.created_at).isoformat(),
        "reason": reason[:300],
        "decision_id": decision.pk if decision else None,
    }


def _decisions(period: Period, in_session: Q) -> dict[str, Any]:
    decisions = list(
        Decision.objects.filter(in_session, answered_at__gte=period.start, answered_at__lt=period.end)
        .select_related("answered_by", "workflow")
        .order_by("answered_at", "id")
    )
    rows = [
        {
            "id": decision.pk,
            "kind": decision.kind,
            "question": decision.question,
            "answer": decision.answer,
            "answered_by": decision.answered_by.get_username() if decision.answered_by else "(deadline default)",
            "workflow_id": decision.workflow_id,
            "created_at": decision.created_at.isoformat(),
            "answered_at": decision.answered_at.isoformat(),
            "wait_seconds": round((decision.answered_at - decision.created_at).total_seconds(), 1),
        }
        for decision in decisions
    ]
    waits = sorted(row["wait_seconds"] for row in rows)
    return {
        "rows": rows,
        "count": len(rows),
        "median_wait_seconds": waits[len(waits) // 2] if waits else None,
        "by_human": sum(1 for decision in decisions if decision.answered_by_id),
    }


def _quality(period: Period, in_session: Q, delivered_ids: list[int]) -> dict[str, Any]:
    first_reviews: dict[int, Task] = {}
    for task in Task.objects.filter(workflow__in=delivered_ids, step__in=REVIEW_STEPS, status__in=WORKED).order_by(
        "workflow_id", "created_at", "id"
    ):
        first_reviews.setdefault(task.workflow_id, task)
    approved = [workflow for workflow, task in first_reviews.items() if task.outcome == "success"]
    test_failures = list(
        Task.objects.filter(
            in_session,
            step__in=TEST_STEPS,
            status__in=WORKED,
            outcome="failure",
            finished_at__gte=period.start,
            finished_at__lt=period.end,
        ).values_list("id", flat=True)
    )
    run_filter = Q(workflow__session=period.session) if period.session is not None else Q()
    verification_failures = list(
        VerificationRun.objects.filter(
            run_filter, passed=False, created_at__gte=period.start, created_at__lt=period.end
        ).values_list("id", flat=True)
    )
    conflicts = list(
        CoordinationEvent.objects.filter(
            in_session,
            type=CoordinationEvent.Type.MERGE_CONFLICT,
            created_at__gte=period.start,
            created_at__lt=period.end,
        ).values_list("id", flat=True)
    )
    reviewed = len(first_reviews)
    return {
        "first_pass_approval": round(len(approved) / reviewed, 3) if reviewed else None,
        "first_pass_approved": len(approved),
        "reviewed_deliveries": reviewed,
        "test_failures_caught": len(test_failures),
        "verification_failures": len(verification_failures),
        "conflicts": len(conflicts),
        "sources": {
            "first_pass_approved": sorted(approved),
            "reviewed_deliveries": sorted(first_reviews),
            "test_failures_caught": test_failures,
            "verification_failures": verification_failures,
            "conflict_events": conflicts,
        },
    }


def _cost_by_agent(period: Period, in_session: Q) -> list[dict[str, Any]]:
    rows = (
        Task.objects.filter(in_session, finished_at__gte=period.start, finished_at__lt=period.end, agent__isnull=False)
        .values("agent_id", "agent__name", "agent__role")
        .annotate(
            cost=Sum("cost_usd"),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            tasks=Count("id"),
            simulated=Count("id", filter=Q(simulated=True)),
        )
        .order_by("-cost", "agent__name")
    )
    return [
        {
            "agent_id": row["agent_id"],
            "agent": row["agent__name"],
            "role": row["agent__role"],
            "cost_usd": _money(row["cost"]),
            "tokens_in": row["tokens_in"] or 0,
            "tokens_out": row["tokens_out"] or 0,
            "tasks": row["tasks"],
            "simulated": bool(row["simulated"]),
        }
        for row in rows
    ]


def _series(period: Period, deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Deliveries and their cost per day of the period (for the charts)."""
    per_day: dict[str, dict[str, Any]] = defaultdict(lambda: {"deliveries": 0, "cost_usd": ZERO})
    for row in deliveries:
        day = datetime.fromisoformat(row["delivered_at"]).astimezone(period.start.tzinfo).date().isoformat()
        per_day[day]["deliveries"] += 1
        per_day[day]["cost_usd"] += row["cost_usd"]
    days = []
    day = period.start.date()
    while day < period.end.date() or (day == period.end.date() and period.end.time() != datetime.min.time()):
        key = day.isoformat()
        days.append({"day": key, **per_day.get(key, {"deliveries": 0, "cost_usd": ZERO})})
        day += timedelta(days=1)
    return days


def _hours(seconds) -> Decimal:
    return _hours_rounded(Decimal(str(seconds or 0)) / 3600)
