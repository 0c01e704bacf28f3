"""The Validation page in a real browser: a finished run, its verdict and the figure that missed."""

from __future__ import annotations

import pytest

from metrics.models import ValidationRun
from metrics.validation import records, report

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def finished_run() -> ValidationRun:
    """A run recorded the way validate_hive records one: figures judged by report.evaluate."""
    figures = {
        "crew": "demo crew",
        "duration_s": 120.0,
        "workflows": {"submitted": 12},
        "coordination_success": {
            "ratio": 0.9167,
            "delivered_unaided": 11,
            "denominator": 12,
            "finished": 12,
            "escalated": 0,
            "running": 0,
        },
        "exactly_once": {
            "duplicate_completions": [],
            "tasks_assigned_twice": [],
            "tasks_lost": [],
            "repository": {
                "checked": True,
                "duplicated": [],
                "commits": 30,
                "tasks_with_commits": 29,
                "untraced_count": 0,
            },
        },
        "reclaim": [{"fault": "kill", "at_s": 40, "daemon": "validate-1-d0", "in_flight": 2, "reclaimed_s": 6.4}],
        "faults": [{"fault": "kill", "at_s": 40}],
        "faults_not_injected": [],
        "handoff_latency": {"p50": 0.8, "p95": 3.9, "count": 70},
        "events": {"table": 400, "seen": 400, "completeness": 1.0, "duplicates": 0, "out_of_order": 0, "connects": 1},
        "unexpected_exits": [],
    }
    run = records.validation_run_start(
        crew="demo crew", faults=["kill"], options={"min_success": 0.95}, sandbox=True, command="validate_hive"
    )
    failed = report.evaluate(figures, min_success=0.95, min_events=1.0)
    return records.validation_run_finish(
        run=run, status=ValidationRun.Status.FAILED, figures=figures, failed_checks=failed
    )


def test_the_validation_page_shows_a_finished_run(new_page, operator):
    run = finished_run()
    page = new_page(operator)
    page.goto("/")
    page.click("nav >> text=Validation")
    page.wait_for_selector("h1:has-text('Validation')")
    row = page.locator(f"[data-validation-run='{run.pk}']")
    assert row.get_attribute("data-status") == "failed"
    assert "Failed" in row.locator("[data-verdict]").inner_text()
    missed = row.locator("[data-failed='coordination_success']")
    assert "91.7%" in missed.inner_text() and "11 of 12" in missed.inner_text()
    color = missed.evaluate("el => getComputedStyle(el).color")
    assert color != row.locator("td").nth(5).evaluate("el => getComputedStyle(el).color")  # highlighted
    assert "6.4 s" in row.inner_text() and "100.0%" in row.inner_text()
    assert page.locator("[data-validation-form]").is_visible()  # operators may start a sandbox run
