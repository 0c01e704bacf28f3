"""The workflow page in a real browser: the diff rendered by the vendored diff2html, runs and queue shown."""

from __future__ import annotations

import pytest
from django.utils import timezone

from coordination.events import EventDraft, event_record
from coordination.models import VerificationRun
from tests.console.test_workflow_page import delivered_workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_diff_is_rendered_and_the_runs_and_queue_are_shown(new_page, viewer, tmp_path):
    workflow = delivered_workflow(tmp_path)
    page = new_page(viewer)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"/sessions/{workflow.session_id}/")
    page.click(f"[data-workflow='{workflow.pk}'] a:has-text('Greet the world')")
    page.wait_for_selector("h1:has-text('Greet the world')")

    page.wait_for_selector("[data-diff-view][data-diff-rendered='true'] .d2h-file-wrapper")
    assert page.inner_text(".d2h-file-name").strip() == "app.py"
    inserted = page.inner_text(".d2h-ins .d2h-code-line-ctn")
    assert "<b>hello</b>, world" in inserted  # shown as text: diff2html escaped it
    assert page.query_selector(".d2h-ins b") is None

    failed = page.wait_for_selector("[data-run].run-failed")
    assert "python -m pytest -q" in failed.inner_text() and "exit 1" in failed.inner_text()
    assert "test_greeting" in failed.inner_text()  # a failed run's output is open
    assert page.query_selector("[data-run].run-passed") is not None
    assert page.inner_text(f"[data-queue-entry='{workflow.pk}']").startswith("Greet the world")
    assert page.inner_text("[data-branch]") == "hive/s/w1"
    assert errors == []

    # Live: a new run and its event appear without a reload, and the diff is rendered again.
    page.wait_for_selector('[data-conn][data-state="live"]')
    page.evaluate("window.__sameDocument = true")
    run = VerificationRun.objects.create(
        workflow=workflow, kind="merge", command=["make", "check"], exit_code=0, passed=True
    )
    event_record(
        EventDraft(
            type="verification_passed",
            message="make check passed",
            session_id=workflow.session_id,
            workflow_id=workflow.pk,
        ),
        now=timezone.now(),
    )
    page.wait_for_selector(f"[data-run='{run.pk}']")
    page.wait_for_selector("[data-diff-view][data-diff-rendered='true'] .d2h-file-wrapper")
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []
