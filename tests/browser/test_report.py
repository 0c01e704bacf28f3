"""The delivery report in a real browser: printed without navigation, made a PDF by page.pdf() and by the server."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from pypdf import PdfReader

from coordination.models import Task, Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def delivered(session, title: str) -> Workflow:
    now = timezone.now()
    workflow = Workflow.objects.create(
        session=session,
        pattern="feature_delivery",
        title=title,
        status=Workflow.Status.COMPLETED,
        human_estimate_hours=Decimal("6"),
        completed_at=now,
        delivered_at=now,
    )
    Task.objects.create(
        workflow=workflow,
        session=session,
        step="implement",
        role="developer",
        title=title,
        status=Task.Status.COMPLETED,
        outcome="success",
        cost_usd=Decimal("0.42"),
        started_at=now - timedelta(minutes=20),
        finished_at=now,
    )
    return workflow


def test_report_prints_without_navigation_and_becomes_a_pdf(new_page, operator, crew):
    delivered(crew, "Coupon codes")
    page = new_page(operator)
    page.goto("/")
    page.click("nav >> text=Reports")
    page.wait_for_selector("h1:has-text('Delivery report')")
    page.select_option("select[name=session]", str(crew.pk))
    page.click("[data-report-form] button[type=submit]")
    page.wait_for_selector("[data-report-session]")
    assert page.inner_text("[data-figure=deliveries]") == "1"
    assert page.is_visible("nav.nav")

    page.emulate_media(media="print")
    assert not page.is_visible("nav.nav")
    assert not page.is_visible("[data-download-pdf]")
    assert page.is_visible("[data-delivery]")

    pdf = PdfReader(io.BytesIO(page.pdf(format="A4", print_background=True)))
    assert len(pdf.pages) >= 1
    text = "".join(page_.extract_text() for page_ in pdf.pages)
    assert crew.name in text and "Coupon codes" in text
    assert "Sign out" not in text

    page.emulate_media(media="screen")
    with page.expect_download() as download:
        page.click("[data-download-pdf]")
    server_pdf = PdfReader(io.BytesIO(download.value.path().read_bytes()))
    assert len(server_pdf.pages) >= 1
    server_text = "".join(page_.extract_text() for page_ in server_pdf.pages)
    assert crew.name in server_text and "Coupon codes" in server_text
    assert "Sign out" not in server_text  # the document, not the console around it
