"""Hourly rollups give the figures the raw rows give, in every window, before and after events are pruned."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from coordination.models import CoordinationEvent, Decision, Task, TaskAttempt, Workflow
from coordination.services import WorkSpec, work_submit
from metrics import rollups
from metrics import selectors as metrics
from metrics.models import MetricHour
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db
WINDOWS = ("1h", "24h", "7d", "all")
# Figures that depend on the clock, not on the rows.
CLOCK = {"start", "end"}


def _shift(workflow: Workflow, delta: timedelta) -> None:
    """Move a workflow's whole history `delta` into the past."""
    Workflow.objects.filter(pk=workflow.pk).update(
        created_at=F("created_at") - delta, completed_at=F("completed_at") - delta
    )
    Task.objects.filter(workflow=workflow).update(
        created_at=F("created_at") - delta,
        ready_at=F("ready_at") - delta,
        started_at=F("started_at") - delta,
        finished_at=F("finished_at") - delta,
    )
    TaskAttempt.objects.filter(task__workflow=workflow).update(
        started_at=F("started_at") - delta, finished_at=F("finished_at") - delta
    )
    Decision.objects.filter(workflow=workflow).update(
        created_at=F("created_at") - delta, answered_at=F("answered_at") - delta
    )
    CoordinationEvent.objects.filter(workflow=workflow).update(created_at=F("created_at") - delta)


@pytest.fixture
def history(crew, engine):
    """Delivered work spread over the last ten days, at odd minutes, with a failed and a reclaimed attempt."""
    for i, pattern in enumerate(["feature_delivery", "code_review_cycle", "pair_programming", "code_review_cycle"]):
        work_submit(session=crew, work=WorkSpec(title=f"Work {i}", pattern=pattern, estimate_hours=Decimal(4 + i)))
    run_until_quiet(engine)
    workflows = list(Workflow.objects.order_by("id"))
    for workflow, hours in zip(workflows, (24 * 9, 30, 5, 2), strict=True):
        _shift(workflow, timedelta(hours=hours, minutes=17 * hours % 60))
    CoordinationEvent.objects.filter(workflow__isnull=True).update(created_at=F("created_at") - timedelta(days=10))
    done = TaskAttempt.objects.filter(status=TaskAttempt.Status.SUCCEEDED).order_by("id")
    for status, attempt in zip((TaskAttempt.Status.FAILED, TaskAttempt.Status.RECLAIMED), done[1:3], strict=True):
        TaskAttempt.objects.create(
            task=attempt.task,
            number=attempt.number + 50,
            agent=attempt.agent,
            status=status,
            started_at=attempt.started_at,
            finished_at=attempt.started_at,
        )
    return workflows


def _figures() -> dict:
    out = {}
    for window in WINDOWS:
        data = metrics.coordination_metrics(window=window)
        out[f"metrics:{window}"] = {k: v for k, v in data.items() if k not in CLOCK}
        value = metrics.business_value(window=window)
        out[f"value:{window}"] = {k: v for k, v in value.items() if k not in CLOCK}
        out[f"cost:{window}"] = metrics.cost_by_role(window=window)
    return out


def test_rollup_figures_equal_raw_figures_and_survive_event_pruning(history, settings):
    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now):
        settings.HIVE_METRIC_ROLLUPS = False
        raw = _figures()
        settings.HIVE_METRIC_ROLLUPS = True
        rolled_hours = rollups.rebuild(now=now)
        assert rolled_hours >= 24 * 9  # from the oldest finished row up to the last closed hour
        assert rollups.watermark() == rollups.floor_hour(now - rollups.SETTLE)
        assert MetricHour.objects.exclude(role="").exists() and MetricHour.objects.filter(role="").exists()
        assert _figures() == raw
        assert raw["value:all"]["inputs"]["workflows_delivered"] == 4
        assert raw["metrics:all"]["attempt_success"]["failed"] == 2

        # Retention removes every event older than an hour: the figures, rolled or raw, do not move.
        call_command("prune_events", "--older-than", "1h", verbosity=0)
        assert not CoordinationEvent.objects.filter(created_at__lt=now - timedelta(hours=1)).exists()
        assert _figures() == raw
        settings.HIVE_METRIC_ROLLUPS = False
        assert _figures() == raw


def test_advance_rolls_closed_hours_once_and_in_order(history):
    now = timezone.now()
    assert rollups.watermark() is None
    first = rollups.advance(now=now, limit=3)
    assert first == 3
    mark = rollups.watermark()
    assert rollups.advance(now=now, limit=0) == 0 and rollups.watermark() == mark
    rollups.catch_up(now=now)
    assert rollups.watermark() == rollups.floor_hour(now - rollups.SETTLE)
    assert rollups.advance(now=now) == 0  # nothing new has closed
    # The rows of an hour are written once: rolling on adds nothing for hours already rolled.
    count = MetricHour.objects.count()
    rollups.catch_up(now=now)
    assert MetricHour.objects.count() == count


def test_the_command_catches_up_and_rebuilds(history, capsys):
    call_command("rollup_metrics")
    assert "rolled" in capsys.readouterr().out
    mark = rollups.watermark()
    assert mark is not None and MetricHour.objects.filter(hour__lt=mark).exists()
    MetricHour.objects.all().delete()
    call_command("rollup_metrics", "--rebuild")
    assert rollups.watermark() == mark and MetricHour.objects.exists()
