"""The hot reads run the number of queries their docstrings promise, whatever the number of rows."""

from __future__ import annotations

import pytest

from coordination import selectors
from coordination.services import WorkSpec, work_submit
from metrics import selectors as metrics
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[1, 3], ids=["one-workflow", "three-workflows"])
def worked(request, crew, engine):
    """Delivered work; the counts below must not depend on how much."""
    for i in range(request.param):
        work_submit(session=crew, work=WorkSpec(title=f"Work {i}", pattern="code_review_cycle"))
    run_until_quiet(engine)
    return crew


def test_coordination_status_runs_seven_queries(worked, django_assert_num_queries):
    with django_assert_num_queries(7):
        status = selectors.coordination_status()
    assert status["agents_total"] == 7


@pytest.fixture(autouse=True)
def rolled(worked):
    """The rollup watermark exists (the first read sets it): what follows is a steady-state read."""
    metrics.coordination_metrics(window="1h")


@pytest.mark.parametrize("window, queries", [("1h", 13), ("24h", 14), ("7d", 14), ("all", 15)])
def test_coordination_metrics_query_count(worked, django_assert_num_queries, window, queries):
    """Rollups: the watermark, MetricHour when whole hours are rolled, six raw; then names and percentiles."""
    with django_assert_num_queries(queries):
        data = metrics.coordination_metrics(window=window)
    assert data["throughput"]["workflows_completed"] >= 1


@pytest.mark.parametrize("window", ["24h", "all"])
def test_business_value_query_count(worked, django_assert_num_queries, window):
    metrics.business_value(window=window)  # the assumptions row exists from here on
    with django_assert_num_queries(9):
        value = metrics.business_value(window=window)
    assert value["hours_saved"] > 0


def test_series_cost_and_agent_performance(worked, django_assert_num_queries):
    with django_assert_num_queries(2):
        metrics.throughput_series(window="24h")
    with django_assert_num_queries(8):
        metrics.cost_by_role(window="24h")
    agent = worked.agents.get(name="developer-1")
    with django_assert_num_queries(3):
        metrics.agent_performance(agent=agent, window="24h")


@pytest.mark.parametrize("window, queries", [("24h", 48), ("all", 50)])
def test_console_overview_query_count(worked, operator, client, django_assert_num_queries, window, queries, settings):
    """The figures computed (the cache off), the coordination objective, the request's session and user."""
    settings.HIVE_API_CACHE_SECONDS = 0
    client.force_login(operator)
    client.get(f"/?window={window}")  # the assumptions row exists from here on
    with django_assert_num_queries(queries):
        response = client.get(f"/?window={window}")
    assert response.status_code == 200


def test_a_live_refresh_of_the_overview_reads_the_cached_figures(worked, operator, client, settings):
    """The overview shares the API's cached figures: a refresh recomputes none of them."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.HIVE_API_CACHE_SECONDS = 600
    cache.clear()
    client.force_login(operator)
    metrics.business_value(window="all")  # the assumptions row (part of the value's cache key) exists
    with CaptureQueriesContext(connection) as first:
        client.get("/?window=all")
    with CaptureQueriesContext(connection) as refresh:
        response = client.get("/?window=all")
    assert response.status_code == 200
    assert len(refresh) <= len(first) - 30
    assert not any("metrics_rollupstate" in q["sql"] for q in refresh.captured_queries)
    cache.clear()

