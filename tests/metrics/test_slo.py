"""The coordination objective: breach and recovery on a crafted window, the Decision, the banner, the export."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from coordination.models import CoordinationEvent, Decision, Session, Workflow
from coordination.selectors import open_decisions
from coordination.services import decision_answer
from metrics.models import CoordinationObjective
from metrics.slo import slo_evaluate

pytestmark = pytest.mark.django_db
E = CoordinationEvent.Type


def finished(session: Session, *, delivered: int = 0, needed_human: int = 0, failed: int = 0, ago=timedelta(minutes=5)):
    """Workflows that finished `ago` before now: delivered without a human, after a human, or failed."""
    at = timezone.now() - ago
    rows = [("completed", 0)] * delivered + [("completed", 1)] * needed_human + [("failed", 0)] * failed
    Workflow.objects.bulk_create(
        Workflow(
            session=session,
            pattern="feature_delivery",
            title=f"w{i}",
            status=status,
            human_interventions=humans,
            completed_at=at,
        )
        for i, (status, humans) in enumerate(rows)
    )


def later() -> None:
    """The window moves on: everything finished so far is older than an hour."""
    Workflow.objects.update(completed_at=timezone.now() - timedelta(hours=2))


def slo_events() -> list[str]:
    return list(
        CoordinationEvent.objects.filter(type__in=[E.SLO_BREACHED, E.SLO_RECOVERED]).values_list("type", flat=True)
    )


def test_breach_raises_a_decision_and_recovery_closes_it(crew, client, operator):
    finished(crew, delivered=8, needed_human=1, failed=1)  # 80 % < 95 %
    evaluation = slo_evaluate(force=True)
    assert (evaluation.change, evaluation.ratio, evaluation.finished) == ("breached", 0.8, 10)
    assert slo_events() == [E.SLO_BREACHED]
    breach = CoordinationEvent.objects.get(type=E.SLO_BREACHED)
    assert breach.collaboration_data["ratio"] == 0.8 and breach.collaboration_data["target"] == 0.95

    decision = Decision.objects.get(kind=Decision.Kind.SLO_BREACHED)
    assert list(open_decisions()) == [decision]
    assert decision.session == crew and decision.task is None
    assert [o["key"] for o in decision.options] == ["acknowledge", "pause_session", "ignore"]
    assert "80.0 %" in decision.question and "95.0 %" in decision.question

    client.force_login(operator)
    overview = client.get(reverse("console:overview")).content.decode()
    assert 'data-slo="breached"' in overview and "Coordination objective breached" in overview
    inbox = client.get(reverse("console:decisions")).content.decode()
    assert f'data-decision-id="{decision.pk}"' in inbox

    # Still below: judged again, nothing new.
    assert slo_evaluate(force=True).change == ""
    assert slo_events() == [E.SLO_BREACHED]

    finished(crew, delivered=190)  # 198 of 200 = 99 %
    assert slo_evaluate(force=True).change == "recovered"
    assert slo_events() == [E.SLO_BREACHED, E.SLO_RECOVERED]
    decision.refresh_from_db()
    assert decision.status == Decision.Status.CANCELLED
    assert 'data-slo="breached"' not in client.get(reverse("console:overview")).content.decode()


def test_old_work_leaves_the_window_and_too_little_work_is_not_judged(crew):
    finished(crew, failed=20, ago=timedelta(minutes=90))  # outside the hour
    finished(crew, delivered=3, failed=1)  # 4 finished, fewer than the minimum of 5
    evaluation = slo_evaluate(force=True)
    assert (evaluation.judged, evaluation.finished, evaluation.state) == (False, 4, "unknown")
    assert slo_events() == []


def test_the_objective_is_edited_like_the_value_assumptions(crew):
    CoordinationObjective.objects.update_or_create(
        singleton=True, defaults={"target_ratio": Decimal("0.700"), "window_minutes": 120, "min_finished_workflows": 2}
    )
    finished(crew, delivered=3, failed=1, ago=timedelta(minutes=100))  # 75 %, inside two hours
    evaluation = slo_evaluate(force=True)
    assert (evaluation.judged, evaluation.change, evaluation.state) == (True, "", "met")


def test_pause_session_answer_pauses_it_and_ignore_silences_new_decisions(crew, operator):
    finished(crew, delivered=2, failed=8)
    slo_evaluate(force=True)
    decision = Decision.objects.get(kind=Decision.Kind.SLO_BREACHED)
    decision_answer(decision=decision, option="pause_session", user=operator)
    crew.refresh_from_db()
    assert crew.status == Session.Status.PAUSED

    later()
    finished(crew, delivered=10)
    assert slo_evaluate(force=True).change == "recovered"
    crew.status = Session.Status.ACTIVE
    crew.save()
    later()
    finished(crew, failed=10)
    assert slo_evaluate(force=True).change == "breached"  # a new decision
    second = Decision.objects.filter(kind=Decision.Kind.SLO_BREACHED, status="open").get()
    decision_answer(decision=second, option="ignore", user=operator)

    later()
    finished(crew, delivered=10)
    assert slo_evaluate(force=True).change == "recovered"
    later()
    finished(crew, failed=10)
    assert slo_evaluate(force=True).change == "breached"
    assert not Decision.objects.filter(kind=Decision.Kind.SLO_BREACHED, status="open").exists()
    last = CoordinationEvent.objects.filter(type=E.SLO_BREACHED).last()
    assert "ignored_until" in last.collaboration_data


def test_daemons_judge_the_window_once_per_interval(crew, engine):
    finished(crew, delivered=1, failed=9)
    engine.tick()  # housekeeping sends the signal; the objective is judged
    assert slo_events() == [E.SLO_BREACHED]
    assert slo_evaluate() is None  # judged moments ago: another daemon would skip it
    assert CoordinationObjective.current().state == "breached"


def test_prometheus_exports_the_objective_and_the_live_figure(crew, operator, client):
    from metrics.prometheus import render

    finished(crew, delivered=9, failed=1)
    slo_evaluate(force=True)
    text = render().decode()
    assert "hive_coordination_success_objective_ratio 0.95" in text
    assert 'hive_coordination_success_rolling_ratio{window="60m"} 0.9' in text
    assert "hive_slo_breached 1.0" in text
