"""The coordination objective (SLO): judge the rolling coordination success and raise the alarm.

Every coordinator daemon calls `slo_evaluate` from its housekeeping (through the
`coordination.signals.housekeeping` signal); a row lock and `EVALUATE_EVERY` make one of
them judge the window at a time. Falling below the target writes `slo_breached` and raises
a Decision for an operator (acknowledge, pause the session with the most failures, or ignore
further breaches for the objective's `ignore_hours`); coming back writes `slo_recovered` and
closes a decision nobody answered. `slo_status` is what the overview's banner shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from coordination import patterns
from coordination.events import EventDraft, events_record
from coordination.models import CoordinationEvent, Decision, Session, Workflow

from . import outcomes
from .models import CoordinationObjective

logger = logging.getLogger(__name__)

E = CoordinationEvent.Type
State = CoordinationObjective.State
# How often the window is judged (by whichever daemon gets there first).
EVALUATE_EVERY = timedelta(seconds=30)
DECISION_KIND = Decision.Kind.SLO_BREACHED


@dataclass(frozen=True)
class Evaluation:
    ratio: float | None
    finished: int
    delivered_unaided: int
    judged: bool
    state: str
    change: str = ""  # "breached", "recovered" or ""
    decision_id: int | None = None


def window_success(*, objective: CoordinationObjective, now: datetime) -> dict[str, Any]:
    """Coordination success of the workflows finished in the objective's window. One query."""
    start = now - timedelta(minutes=objective.window_minutes)
    return outcomes.coordination_success(Workflow.objects.filter(completed_at__gte=start, completed_at__lte=now))


def slo_evaluate(*, now: datetime | None = None, force: bool = False) -> Evaluation | None:
    """Judge the window and record a change of state; None when another daemon judged it recently.

    The window is judged only when at least `min_finished_workflows` finished in it; until
    then the state stays as it was (a quiet night neither breaches nor recovers).
    """
    now = now or timezone.now()
    CoordinationObjective.current()
    with transaction.atomic():
        rows = CoordinationObjective.objects.select_for_update(skip_locked=True).filter(singleton=True)
        if not force:
            rows = rows.filter(Q(last_evaluated_at__isnull=True) | Q(last_evaluated_at__lte=now - EVALUATE_EVERY))
        objective = rows.first()
        if objective is None:
            return None
        success = window_success(objective=objective, now=now)
        ratio = success["ratio"]
        judged = ratio is not None and success["finished"] >= objective.min_finished_workflows
        objective.last_ratio = ratio
        objective.last_finished = success["finished"]
        objective.last_evaluated_at = now
        change = ""
        if judged and ratio < float(objective.target_ratio) and objective.state != State.BREACHED:
            change = "breached"
            _breach(objective=objective, success=success, now=now)
        elif judged and ratio >= float(objective.target_ratio) and objective.state == State.BREACHED:
            change = "recovered"
            _recover(objective=objective, success=success, now=now)
        elif judged and objective.state == State.UNKNOWN:
            objective.state, objective.state_since = State.MET, now
        objective.save(
            update_fields=[
                "state",
                "state_since",
                "last_ratio",
                "last_finished",
                "last_evaluated_at",
                "decision",
            ]
        )
    return Evaluation(
        ratio=ratio,
        finished=success["finished"],
        delivered_unaided=success["delivered_unaided"],
        judged=judged,
        state=objective.state,
        change=change,
        decision_id=objective.decision_id,
    )


def slo_on_housekeeping(sender, **kwargs) -> None:
    """Receiver of coordination.signals.housekeeping (connected in MetricsConfig.ready)."""
    slo_evaluate()


def _facts(objective: CoordinationObjective, success: dict[str, Any]) -> dict[str, Any]:
    return {
        "ratio": success["ratio"],
        "target": float(objective.target_ratio),
        "window_minutes": objective.window_minutes,
        "finished": success["finished"],
        "delivered_unaided": success["delivered_unaided"],
        "formula": outcomes.DEFINITIONS["delivered_without_a_human"]
        + " / "
        + outcomes.DEFINITIONS["workflows_finished"],
    }


def _pct(value: float | Decimal | None) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f} %"


def _breach(*, objective: CoordinationObjective, success: dict[str, Any], now: datetime) -> None:
    objective.state, objective.state_since = State.BREACHED, now
    facts = _facts(objective, success)
    ignored_until = ignored_until_time(objective=objective)
    drafts = []
    objective.decision = None
    if ignored_until is not None and ignored_until > now:
        facts["ignored_until"] = ignored_until.isoformat()
    else:
        session = _session_with_most_failures(objective=objective, now=now)
        if session is not None:
            objective.decision = decision = _decision_create(objective=objective, session=session, facts=facts, now=now)
            facts["decision"] = decision.pk
            drafts.append(
                EventDraft(
                    type=E.DECISION_REQUESTED,
                    message=decision.question,
                    session_id=session.pk,
                    collaboration_data={
                        "decision": decision.pk,
                        "kind": decision.kind,
                        "options": decision.options,
                        "default": decision.default_option,
                        "deadline": decision.deadline.isoformat(),
                    },
                )
            )
    drafts.insert(
        0,
        EventDraft(
            type=E.SLO_BREACHED,
            message=f"Coordination success {_pct(success['ratio'])} over the last {objective.window_minutes} min "
            f"is below the objective of {_pct(objective.target_ratio)}",
            collaboration_data=facts,
        ),
    )
    events_record(drafts, now=now)
    logger.warning("Coordination objective breached: %s", drafts[0].message)


def _recover(*, objective: CoordinationObjective, success: dict[str, Any], now: datetime) -> None:
    facts = _facts(objective, success)
    facts["breached_for_s"] = round((now - objective.state_since).total_seconds(), 1) if objective.state_since else None
    objective.state, objective.state_since = State.MET, now
    if objective.decision_id is not None:
        # Nobody needs to answer a question the crew has answered itself.
        closed = Decision.objects.filter(pk=objective.decision_id, status=Decision.Status.OPEN).update(
            status=Decision.Status.CANCELLED
        )
        if closed:
            facts["decision_closed"] = objective.decision_id
    objective.decision = None
    events_record(
        [
            EventDraft(
                type=E.SLO_RECOVERED,
                message=f"Coordination success {_pct(success['ratio'])} over the last {objective.window_minutes} min "
                f"meets the objective of {_pct(objective.target_ratio)} again",
                collaboration_data=facts,
            )
        ],
        now=now,
    )


def ignored_until_time(*, objective: CoordinationObjective) -> datetime | None:
    """Until when an operator's "ignore" answer holds (the last such answer + ignore_hours)."""
    answered = (
        Decision.objects.filter(kind=DECISION_KIND, answer="ignore", answered_at__isnull=False)
        .order_by("-answered_at")
        .values_list("answered_at", flat=True)
        .first()
    )
    return answered + timedelta(hours=objective.ignore_hours) if answered else None


def _session_with_most_failures(*, objective: CoordinationObjective, now: datetime) -> Session | None:
    """The session whose finished workflows most often needed a human or failed; else the newest active one."""
    start = now - timedelta(minutes=objective.window_minutes)
    worst = (
        Workflow.objects.filter(completed_at__gte=start, completed_at__lte=now)
        .filter(outcomes.FINISHED)
        .exclude(outcomes.DELIVERED_UNAIDED)
        .values("session_id")
        .annotate(n=Count("pk"))
        .order_by("-n", "-session_id")
        .values_list("session_id", flat=True)
        .first()
    )
    if worst is not None:
        return Session.objects.get(pk=worst)
    return Session.objects.filter(status=Session.Status.ACTIVE).order_by("-created_at").first()


def _decision_create(*, objective: CoordinationObjective, session: Session, facts: dict, now: datetime) -> Decision:
    spec = patterns.DECISIONS[DECISION_KIND]
    values = {
        "ratio": _pct(facts["ratio"]),
        "target": _pct(objective.target_ratio),
        "window": f"{objective.window_minutes} min",
        "ignore_hours": objective.ignore_hours,
    }
    return Decision.objects.create(
        session=session,
        kind=DECISION_KIND,
        question=spec.question.format(**values)[:300],
        context={**facts, "session": session.name},
        options=[{"key": o.key, "label": o.label.format(**values)} for o in spec.options],
        default_option=spec.default,
        deadline=now + timedelta(hours=settings.HIVE["DECISION_DEADLINE_HOURS"]),
        created_at=now,
    )


def slo_status(*, now: datetime | None = None) -> dict[str, Any]:
    """The objective and its last judgement, for the overview's banner and the API. Two queries at most."""
    objective = CoordinationObjective.current()
    decision = None
    if objective.decision_id:
        decision = Decision.objects.filter(pk=objective.decision_id).values("id", "status", "answer").first()
    return {
        "state": objective.state,
        "breached": objective.state == State.BREACHED,
        "since": objective.state_since,
        "target": float(objective.target_ratio),
        "window_minutes": objective.window_minutes,
        "min_finished_workflows": objective.min_finished_workflows,
        "ratio": objective.last_ratio,
        "finished": objective.last_finished,
        "evaluated_at": objective.last_evaluated_at,
        "decision": decision,
    }
