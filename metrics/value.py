"""What the recorded work in a window is worth under the operator's assumptions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from . import rollups
from .models import ValueAssumptions
from .totals import _simulated_share
from .windows import (
    MIN_ANNUALISE_SPAN_HOURS,
    ZERO,
    _hours,
    _money,
    window_bounds,
)


def business_value(*, window: str) -> dict[str, Any]:
    """What the recorded work in `window` is worth: value_between(window's start, now), labelled with the window."""
    start, now = window_bounds(window)
    return {"window": window, **value_between(start=start, end=now)}


def value_between(*, start: datetime | None, end: datetime, session=None) -> dict[str, Any]:
    """What the recorded work in [start, end) is worth under the operator's assumptions, of `session` if given.

    Nine queries (rollups.figures_between and the assumptions).

    Returns::

        {
          "window", "start", "end",
          "hours_saved": Decimal, "crew_hours": Decimal, "human_hours_spent": Decimal,
          "productivity_gain": float | None, "cost_usd": Decimal, "value": Decimal, "net_value": Decimal,
          "annualised_value_per_developer": Decimal | None, "currency": "USD",
          "inputs": {"human_estimate_hours", "workflows_delivered", "tasks_completed", "decisions_answered",
                     "crew_seconds", "cost_usd", "span_hours", "first_started", "last_finished"},
          "assumptions": {"currency", "hourly_rate", "working_hours_per_year", "team_size",
                          "human_review_minutes_per_decision", "updated_at"},
          "formulas": {name: text},
          "simulated_share": {...},
        }

    Decimals are money or hours rounded to cents; None means "not enough recorded work to say".
    """
    now = end
    assumptions = ValueAssumptions.current()
    figures = rollups.figures_between(start=start, end=end, session=session)
    totals = rollups.totals(figures["groups"])[None]
    flow = figures["flow"]
    decisions_answered = flow["decisions_answered"]

    # Each delivered workflow's estimate, once; rework, failures and abandoned work add none.
    estimate = Decimal(flow["delivered_estimate_hours"])
    human_hours = Decimal(decisions_answered) * Decimal(assumptions.human_review_minutes_per_decision) / 60
    hours_saved = estimate - human_hours
    crew_hours = Decimal(str(totals["busy_seconds"])) / 3600
    # A scripted runtime's duration is not work time: a gain over simulated time alone would be invented.
    real_busy = float(totals["busy_seconds"]) - float(totals["simulated_busy_seconds"])
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
        "productivity_gain": round(float(estimate / crew_hours), 3) if crew_hours > 0 and real_busy > 0 else None,
        "cost_usd": _money(cost),
        "value": _money(value),
        "net_value": _money(net_value),
        "annualised_value_per_developer": annualised,
        "inputs": {
            "human_estimate_hours": _hours(estimate),
            "workflows_delivered": flow["workflows_delivered"],
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
    "hours_saved": "Σ human_estimate_hours of workflows delivered in the window, each counted once when it is "
    "delivered − human_hours_spent; rework rounds, failed verification, conflicts and abandoned workflows "
    "add crew time and cost, never value",
    "crew_hours": "Σ (finished_at − started_at) of tasks completed or failed in the window, rework included",
    "productivity_gain": "Σ human_estimate_hours of workflows delivered in the window / crew_hours "
    "(None when crew_hours is 0, or when all of it is simulated: a scripted runtime's duration is not work time)",
    "cost_usd": "Σ cost_usd of tasks finished in the window, as reported by their runtimes",
    "value": "hours_saved × hourly_rate",
    "net_value": "value − cost_usd",
    "annualised_value_per_developer": "net_value × working_hours_per_year / span_hours / team_size, "
    "where span_hours = last finished_at − first started_at of the window's recorded work "
    f"(None when span_hours < {MIN_ANNUALISE_SPAN_HOURS})",
}
