"""Validation runs in the API (DRF, schema, operator-only writes) and on the console's Validation page."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from metrics.models import ValidationRun
from metrics.validation import records, report
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db


def figures(*, delivered: int, concluded: int, duplicates: int = 0) -> dict:
    return {
        "crew": "demo crew",
        "duration_s": 95.0,
        "workflows": {"submitted": concluded},
        "coordination_success": {
            "ratio": round(delivered / concluded, 4),
            "delivered_unaided": delivered,
            "denominator": concluded,
            "finished": concluded,
            "escalated": 0,
            "running": 0,
        },
        "exactly_once": {
            "duplicate_completions": [{"task": 7, "succeeded_attempts": 2, "completed_events": 1}] * duplicates,
            "tasks_assigned_twice": [],
            "tasks_lost": [],
            "repository": {
                "checked": True,
                "duplicated": [],
                "commits": 9,
                "tasks_with_commits": 8,
                "untraced_count": 0,
            },
        },
        "reclaim": [
            {
                "fault": "kill",
                "at_s": 20,
                "daemon": "validate-1-d1",
                "in_flight": 1,
                "reclaimed_s": 3.1,
                "restarted_s": 3.2,
            }
        ],
        "faults": [{"fault": "kill", "at_s": 20}],
        "faults_not_injected": [],
        "handoff_latency": {"p50": 0.7, "p95": 4.1, "count": 86},
        "events": {"table": 459, "seen": 459, "completeness": 1.0, "duplicates": 0, "out_of_order": 0, "connects": 1},
        "unexpected_exits": [],
    }


def finished_run(*, delivered: int, concluded: int, duplicates: int = 0) -> ValidationRun:
    run = records.validation_run_start(
        crew="demo crew",
        faults=["kill"],
        options={"min_success": 0.95},
        sandbox=True,
        command="manage.py validate_hive --sandbox",
    )
    data = figures(delivered=delivered, concluded=concluded, duplicates=duplicates)
    failed = report.evaluate(data, min_success=0.95, min_events=1.0)
    status = ValidationRun.Status.FAILED if failed else ValidationRun.Status.PASSED
    return records.validation_run_finish(run=run, status=status, figures=data, failed_checks=failed)


def test_runs_are_listed_latest_first_to_any_signed_in_user(client, viewer):
    old = finished_run(delivered=13, concluded=13)
    new = finished_run(delivered=9, concluded=10, duplicates=1)
    assert (old.status, new.status) == ("passed", "failed")
    assert new.failed_checks == ["coordination_success", "duplicate_completions"]
    secret = issue_token(viewer)
    body = client.get("/api/validation-runs", HTTP_AUTHORIZATION=f"Token {secret}").json()
    assert [r["id"] for r in body["results"]] == [new.pk, old.pk]
    assert body["results"][0]["figures"]["coordination_success"]["ratio"] == 0.9
    assert (
        client.get(f"/api/validation-runs/{old.pk}", HTTP_AUTHORIZATION=f"Token {secret}").json()["status"] == "passed"
    )


def test_starting_a_run_needs_an_operator_and_valid_input(client, viewer, operator):
    refused = client.post(
        "/api/validation-runs",
        {"minutes": 1},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {issue_token(viewer)}",
    )
    assert refused.status_code == 403
    secret = issue_token(operator)
    bad = client.post(
        "/api/validation-runs",
        {"minutes": 1, "faults": ["db"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {secret}",
    )
    assert bad.status_code == 400 and any(field.startswith("faults") for field in bad.json().get("errors", bad.json()))
    ValidationRun.objects.create(
        crew="demo crew", status="running", heartbeat_at=timezone.now(), pid=None, host="elsewhere"
    )
    busy = client.post(
        "/api/validation-runs",
        {"minutes": 1, "faults": ["kill"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {secret}",
    )
    assert busy.status_code == 409 and "one run at a time" in busy.json()["detail"]
    assert ValidationRun.objects.count() == 1


def test_a_run_whose_process_vanished_is_closed(db):
    run = ValidationRun.objects.create(
        crew="demo crew", status="running", host="elsewhere", heartbeat_at=timezone.now() - records.STALE_AFTER * 2
    )
    assert records.validation_runs_close_abandoned() == 1
    run.refresh_from_db()
    assert (run.status, run.error) == ("error", "the run's process ended without a report")


def test_the_schema_documents_the_runs(client, operator):
    client.force_login(operator)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/validation-runs" in schema and "ValidationStart" in schema


def test_the_page_shows_runs_with_failed_figures_marked(client, viewer):
    finished_run(delivered=13, concluded=13)
    failed = finished_run(delivered=9, concluded=10, duplicates=1)
    client.force_login(viewer)
    page = client.get(reverse("console:validation")).content.decode()
    assert f'data-validation-run="{failed.pk}" data-status="failed"' in page
    assert 'data-failed="coordination_success"' in page and 'data-failed="completed twice"' in page
    assert "90.0%" in page and "100.0%" in page
    assert "Start a sandbox run" not in page  # viewers read only
    assert client.post(reverse("console:validation_start"), {"minutes": 1}).status_code == 403


def test_an_operator_gets_a_clear_message_for_bad_input(client, operator):
    client.force_login(operator)
    page = client.get(reverse("console:validation")).content.decode()
    assert "Start a sandbox run" in page
    response = client.post(reverse("console:validation_start"), {"minutes": "90", "faults": ["db"]}, follow=True)
    text = response.content.decode()
    assert "Not started" in text and "minutes" in text and "faults" in text
    assert not ValidationRun.objects.exists()
