"""Status, metrics, business value and spawn endpoints."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.models import Agent
from coordination.models import CoordinationEvent, Session, Workflow
from coordination.services import WorkSpec, coordinator_register, work_submit
from metrics.models import ValueAssumptions
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered(crew, engine):
    """Three features delivered by the scripted crew, 8 h estimated each."""
    for title in ("Coupons", "Search", "Exports"):
        work_submit(session=crew, work=WorkSpec(title=title, estimate_hours=Decimal("8")))
    run_until_quiet(engine)
    assert Workflow.objects.filter(status="completed").count() == 3
    return crew


def test_status_reports_crew_and_health(delivered, viewer_client, engine):
    data = viewer_client.get("/api/coordination/status").json()
    assert data["agents_total"] == 7
    assert data["agents_by_role"]["developer"] == 2
    assert data["leader_id"] == engine.instance.pk
    assert data["health"]["status"] == "ok", data["health"]
    assert [a["simulated"] for a in data["agents"]] == [True] * 7
    assert data["sessions"][0]["id"] == delivered.pk


def test_status_without_daemon_is_down(crew, viewer_client):
    data = viewer_client.get("/api/coordination/status").json()
    assert data["health"] == {"status": "down", "reasons": ["no live coordinator daemon"]}


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "all"])
def test_metrics_windows(delivered, viewer_client, window):
    response = viewer_client.get(f"/api/coordination/metrics?window={window}")
    assert response.status_code == 200
    data = response.json()
    assert data["window"] == window
    assert data["throughput"]["tasks_completed"] == 18
    assert data["throughput"]["workflows_completed"] == 3
    assert data["coordination_success_rate"] == 1.0
    assert data["simulated_share"]["tasks_completed"] == 1.0
    assert data["cycle_time"]["workflow"]["count"] == 3


@pytest.mark.parametrize("url", ["/api/coordination/metrics", "/api/coordination/business-value"])
def test_bad_window_names_the_field(viewer_client, url):
    response = viewer_client.get(f"{url}?window=2h")
    assert response.status_code == 400
    assert "window" in response.json()["errors"]


def test_metrics_invent_nothing_without_work(viewer_client):
    data = viewer_client.get("/api/coordination/metrics?window=all").json()
    assert data["coordination_success_rate"] is None
    assert data["rework_rate"] is None
    assert data["cycle_time"]["task"] == {"p50": None, "p95": None, "count": 0}
    value = viewer_client.get("/api/coordination/business-value?window=all").json()
    assert value["productivity_gain"] is None
    assert value["annualised_value_per_developer"] is None
    assert Decimal(value["net_value"]) == 0


def test_business_value_follows_the_assumptions(delivered, viewer_client, operator):
    first = viewer_client.get("/api/coordination/business-value?window=24h").json()
    assert Decimal(first["inputs"]["human_estimate_hours"]) == Decimal("24.00")
    assert Decimal(first["hours_saved"]) == Decimal("24.00")
    assert Decimal(first["value"]) == Decimal("2400.00")  # default 100/h
    assert first["assumptions"]["hourly_rate"] == "100.00"
    assert set(first["formulas"]) >= {"hours_saved", "productivity_gain", "annualised_value_per_developer"}
    assumptions = ValueAssumptions.current()
    assumptions.hourly_rate = Decimal("150.00")
    assumptions.team_size = 3
    assumptions.save()
    # Served from the short read cache unless the assumptions changed: they did.
    second = viewer_client.get("/api/coordination/business-value?window=24h").json()
    assert Decimal(second["value"]) == Decimal("3600.00")
    assert second["assumptions"]["hourly_rate"] == "150.00"
    assert second["assumptions"]["team_size"] == 3
    assert second["simulated_share"]["tasks_completed"] == 1.0


@pytest.mark.parametrize(
    "url", ["/api/coordination/status", "/api/coordination/metrics?window=all", "/api/coordination/business-value"]
)
def test_read_queries_do_not_grow_with_rows(
    crew, operator_client, django_assert_max_num_queries, url, engine, settings
):
    settings.HIVE_API_CACHE_SECONDS = 0  # count the real computation every time
    work_submit(session=crew, work=WorkSpec(title="One", estimate_hours=2))
    run_until_quiet(engine)
    # 30: the first metrics read of a database also starts the hourly rollups (metrics.rollups).
    with django_assert_max_num_queries(30) as small:
        assert operator_client.get(url).status_code == 200
    for index in range(5):
        work_submit(session=crew, work=WorkSpec(title=f"More {index}", estimate_hours=2))
    run_until_quiet(engine)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert operator_client.get(url).status_code == 200


def test_spawn_default_team(operator_client, workspace):
    response = operator_client.post(
        "/api/coordination/spawn",
        {
            "name": "Checkout team",
            "goal": "ship checkout",
            "workspace": str(workspace),
            "backlog": [{"title": "Cart", "estimate_hours": "6.5"}, {"title": "Pay", "pattern": "code_review_cycle"}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["session"]["name"] == "Checkout team"
    assert sorted(a["role"] for a in data["agents"]) == sorted(Agent.Role.values)
    assert all(a["runtime"] == "scripted" and a["simulated"] for a in data["agents"])
    assert [w["title"] for w in data["workflows"]] == ["Cart", "Pay"]
    assert data["workflows"][0]["human_estimate_hours"] == "6.50"
    assert CoordinationEvent.objects.filter(type="team_spawned", session_id=data["session"]["id"]).exists()


def test_spawn_custom_members(operator_client, workspace):
    members = [
        {"role": "developer", "name": "dev-a", "concurrency": 2, "capabilities": ["python"]},
        {"role": "reviewer", "runtime_config": {"duration_s": 0, "script": {"review": ["success"]}}},
    ]
    response = operator_client.post(
        "/api/coordination/spawn", {"name": "Small", "workspace": str(workspace), "members": members}, format="json"
    )
    assert response.status_code == 201, response.content
    agents = {a["name"]: a for a in response.json()["agents"]}
    assert agents["dev-a"]["concurrency"] == 2
    assert agents["reviewer-1"]["runtime_config"]["script"] == {"review": ["success"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "members": []}, "members"),
        ({"name": "x", "members": [{"role": "wizard"}]}, "members"),
        ({"name": "x", "members": [{"role": "developer", "concurrency": 99}]}, "members"),
        (
            {"name": "x", "members": [{"role": "developer", "runtime_config": {"bogus": 1}}]},
            "members[0].runtime_config",
        ),
        ({"name": "x", "workspace": "relative/path"}, "workspace"),
        ({"name": "x", "backlog": [{"title": ""}]}, "backlog"),
        ({"name": "x", "members": [{"role": "developer", "name": "a"}, {"role": "tester", "name": "a"}]}, "members"),
    ],
)
def test_spawn_validation_names_the_field(operator_client, body, field):
    before = Session.objects.count()
    response = operator_client.post("/api/coordination/spawn", body, format="json")
    assert response.status_code == 400, response.content
    data = response.json()
    fields = set(data) | set(data.get("errors", {}))
    assert any(name == field or name.startswith(field) for name in fields), data
    assert Session.objects.count() == before  # nothing half-written


def test_readiness_and_prometheus(crew, anon_client, operator_client):
    assert anon_client.get("/healthz").json() == {"status": "ok"}
    not_ready = anon_client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json() == {
        "status": "failing",
        "checks": {"database": "ok", "channel_layer": "ok", "coordinator": "failing"},
    }
    coordinator_register(concurrency=1)
    ready = anon_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"

    assert anon_client.get("/metrics").status_code == 401
    scrape = operator_client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape["Content-Type"].startswith("text/plain")
    text = scrape.content.decode()
    assert 'hive_agents_by_role{role="developer"} 2.0' in text
    assert "hive_daemons_alive 1.0" in text
    assert 'hive_tasks_completed{window="1h"} 0.0' in text
    assert "hive_health 0.0" in text
