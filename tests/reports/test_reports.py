"""The delivery report: figures from rows (the metrics selectors' own), bad periods, exports that round-trip."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from coordination.models import Decision, Workflow
from metrics import value as metrics_value
from reports.exports import report_csv
from reports.inputs import parse_period
from reports.selectors import delivery_report
from tests.reports.factories import delivered_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(crew):
    delivered = delivered_workflow(
        crew,
        title="Coupons",
        hours="10",
        delivered_days_ago=1,
        reviews=("changes_requested", "success"),
        tests=("failure", "success"),
    )
    second = delivered_workflow(crew, title="Search", hours="4", delivered_days_ago=3)
    old = delivered_workflow(crew, title="Old work", hours="8", delivered_days_ago=40)
    abandoned = delivered_workflow(crew, title="Dropped", hours="6", status=Workflow.Status.CANCELLED)
    return {"delivered": delivered, "second": second, "old": old, "abandoned": abandoned}


def test_the_report_lists_deliveries_once_with_the_metrics_figures(history, crew):
    period = parse_period({"period": "7d", "session": str(crew.pk)})

    report = delivery_report(period)

    assert [row["title"] for row in report["deliveries"]] == ["Search", "Coupons"]
    coupons = report["deliveries"][1]
    assert (coupons["review_rounds"], coupons["test_rounds"], coupons["estimate_hours"]) == (2, 2, Decimal("10.00"))
    assert report["totals"]["estimate_hours"] == Decimal("14.00")
    assert report["value"] == metrics_value.value_between(start=period.start, end=period.end, session=crew)
    assert report["value"]["hours_saved"] <= Decimal("14.00")
    assert [row["title"] for row in report["abandoned"]] == ["Dropped"]
    quality = report["quality"]
    assert (quality["reviewed_deliveries"], quality["first_pass_approved"]) == (2, 1)
    assert quality["test_failures_caught"] == 1
    assert quality["sources"]["first_pass_approved"] == [history["second"].pk]


def test_csv_and_json_exports_round_trip(history, crew):
    period = parse_period({"period": "30d"})
    report = delivery_report(period)

    rows = list(csv.DictReader(io.StringIO(report_csv(report, table="deliveries"))))
    assert [int(row["id"]) for row in rows] == [row["id"] for row in report["deliveries"]]
    assert sum(Decimal(row["cost_usd"]) for row in rows) == report["totals"]["cost_usd"]
    assert sum(Decimal(row["estimate_hours"]) for row in rows) == report["totals"]["estimate_hours"]

    figures = {row["figure"]: row for row in csv.DictReader(io.StringIO(report_csv(report, table="figures")))}
    assert figures["deliveries"]["value"] == "2"
    assert figures["deliveries"]["sources"] == " ".join(f"workflows:{row['id']}" for row in report["deliveries"])

    out = io.StringIO()
    call_command("report", "--since", "30d", "--format", "json", "--out", "-", stdout=out)
    data = json.loads(out.getvalue())
    assert [row["id"] for row in data["deliveries"]] == [row["id"] for row in report["deliveries"]]
    assert {figure["key"] for figure in data["figures"]} >= {"deliveries", "hours_saved", "cost_usd"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "custom", "start": "2026-03-10", "end": "2026-03-01"}, "end"),
        ({"period": "custom", "start": "10/03/2026", "end": "2026-03-11"}, "start"),
        ({"period": "custom", "start": "2020-01-01", "end": "2026-01-01"}, "end"),
        ({"period": "custom", "start": "2026-01-01"}, "end"),
        ({"period": "yesterday"}, "period"),
        ({"period": "7d", "start": "2026-01-01"}, "start"),
    ],
)
def test_bad_periods_are_a_400_naming_the_field(operator_client, client, operator, params, field):
    api = operator_client.get("/api/reports/delivery", params)
    assert api.status_code == 400
    body = api.json()
    assert field in body.get("errors", body)

    client.force_login(operator)
    page = client.get("/reports/", params)
    assert page.status_code == 400
    assert f"<strong>{field}</strong>" in page.content.decode()


def test_unknown_session_is_404_and_anonymous_users_are_refused(anon_client, client, operator_client):
    assert operator_client.get("/api/reports/delivery", {"session": "999999"}).status_code == 404
    assert anon_client.get("/api/reports/delivery").status_code in (401, 403)
    assert anon_client.get("/api/reports/delivery.csv").status_code in (401, 403)
    page = client.get("/reports/")
    assert page.status_code == 302 and "/login" in page["Location"]
    assert client.get("/reports/export.csv").status_code == 302


def test_page_shows_figures_with_their_sources(history, crew, client, viewer):
    client.force_login(viewer)

    page = client.get("/reports/", {"period": "7d", "session": crew.pk})

    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-figure="deliveries">2<' in html
    assert f'href="/api/workflows/{history["delivered"].pk}"' in html
    assert "Appendix: where each figure comes from" in html
    assert "Dropped" in html and "Old work" not in html


def test_command_writes_a_csv_and_names_bad_flags(history, tmp_path):
    out = tmp_path / "deliveries.csv"
    call_command("report", "--since", "30d", "--format", "csv", "--out", str(out))
    assert out.read_text().splitlines()[0].startswith("id,title,session")

    with pytest.raises(CommandError, match="--until: must be on or after start"):
        call_command("report", "--since", "2026-05-01", "--until", "2026-04-01", "--format", "csv", "--out", "-")
    with pytest.raises(CommandError, match="--session: no session"):
        call_command("report", "--session", "nobody", "--format", "csv", "--out", "-")


def test_decisions_answered_in_the_period_with_their_wait(crew, operator):
    now = timezone.now()
    Decision.objects.create(
        session=crew,
        kind="other",
        question="Ship it?",
        options=[{"key": "yes"}],
        default_option="yes",
        deadline=now + timedelta(hours=1),
        status=Decision.Status.ANSWERED,
        answer="yes",
        answered_by=operator,
        answered_at=now,
        created_at=now - timedelta(minutes=5),
    )

    decisions = delivery_report(parse_period({"period": "7d"}))["decisions"]

    assert decisions["count"] == 1 and decisions["by_human"] == 1
    assert decisions["rows"][0]["wait_seconds"] == 300.0
