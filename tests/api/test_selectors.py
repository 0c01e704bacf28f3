"""Selectors return the documented shapes and stay at a fixed number of queries."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from coordination import selectors
from coordination.exceptions import DomainError
from coordination.services import WorkSpec, work_submit
from metrics import selectors as metrics
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def delivered(crew, engine):
    workflow = work_submit(session=crew, work=WorkSpec(title="Add coupons", estimate_hours=Decimal("12")))
    run_until_quiet(engine)
    engine.shutdown(grace=1)
    workflow.refresh_from_db()
    assert workflow.status == "completed"
    return workflow


def test_status_shape(delivered):
    status = selectors.coordination_status()
    json.dumps(status, cls=DjangoJSONEncoder)
    assert status["agents_total"] == 7
    assert status["agents_by_role"]["developer"] == 2
    assert status["queue_depth"] == 0
    assert status["health"]["status"] == "down"  # engine shut down -> no live daemon


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "all"])
def test_metrics_shape(delivered, window):
    data = metrics.coordination_metrics(window=window)
    json.dumps(data, cls=DjangoJSONEncoder)
    assert data["throughput"]["tasks_completed"] == 6
    assert data["throughput"]["workflows_completed"] == 1
    assert data["coordination_success_rate"] == 1.0
    assert data["review_rounds_per_change"] == 1.0
    assert data["cycle_time"]["task"]["count"] == 6
    assert data["handoff_latency"]["count"] == 5
    assert data["simulated_share"]["tasks_completed"] == 1.0
    value = metrics.business_value(window=window)
    json.dumps(value, cls=DjangoJSONEncoder)
    assert value["inputs"]["human_estimate_hours"] == Decimal("12.00")
    assert value["hours_saved"] == Decimal("12.00")
    assert value["value"] == Decimal("1200.00")
    series = metrics.throughput_series(window=window, buckets=6)
    assert len(series) == 6 and sum(b["tasks_completed"] for b in series) == 6
    assert sum(b["workflows_completed"] for b in series) == 1
    assert metrics.cost_by_role(window=window)


def test_bad_window():
    with pytest.raises(DomainError) as exc:
        metrics.coordination_metrics(window="2h")
    assert "window" in exc.value.errors
