"""The delivery report in a real browser: printed without navigation, made a PDF by page.pdf() and by the server."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from tests.reports.factories import delivered_workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_report_prints_without_navigation_and_becomes_a_pdf(new_page, operator, crew):
    delivered_workflow(crew, title="Coupon codes", hours="6", delivered_days_ago=0, cost="0.42")
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
