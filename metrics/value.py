"""What the recorded work in a window is worth under the operator's assumptions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from coordination.models import Decision

from .models import ValueAssumptions
from .totals import _simulated_share, _task_totals
from .windows import (
    MIN_ANNUALISE_SPAN_HOURS,
    ZERO,
    _hours,
    _in_window,
    _money,
    window_bounds,
)


def business_value(*, window: str) -> dict[str, Any]:
    """What the recorded work in `window` is worth: value_between(window's start, now), labelled with the window."""
    start, now = window_bounds(window)
    return {"window": window, **value_between(start=start, end=now)}


def value_between(*, start: datetime | None, end: datetime, session=None) -> dict[str, Any]:
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
    now = end
    assumptions = ValueAssumptions.current()
    totals = _task_totals(start, end=end, session=session)
    decisions = Decision.objects.filter(_in_window("answered_at", start), status=Decision.Status.ANSWERED)
    if session is not None:
        decisions = decisions.filter(session=session)
    decisions_answered = decisions.filter(answered_at__lt=end).count()

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
