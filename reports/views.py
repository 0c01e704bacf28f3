"""The console's Reports page, its CSV/JSON exports and its PDF."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET
from rest_framework.exceptions import ValidationError

from coordination.models import Session
from coordination.views import _page

from .exports import TABLES, report_csv, report_json
from .figures import headline_figures, source_links
from .inputs import PERIOD_CHOICES, Period, parse_period
from .pdf import PdfUnavailable, html_to_pdf
from .selectors import delivery_report

STATIC = Path(settings.BASE_DIR) / "static"
INLINE_ASSETS = ("css/console.css", "css/report.css")


def _context(period: Period, *, params=None) -> dict:
    """The page's context; `params` (the request's query) fill the form again, none for a printed report."""
    params = params or {}
    report = delivery_report(period)
    figures = [figure | {"links": source_links(figure)} for figure in headline_figures(report)]
    query = urlencode(period.query())
    return {
        "report": report,
        "figures": figures,
        "period_obj": period,
        "query": query,
        "form": {key: params.get(key, "") for key in ("period", "start", "end", "session")},
        "period_choices": PERIOD_CHOICES,
        "sessions": Session.objects.order_by("-created_at").values("id", "name")[:200],
        "chart_data": {
            "days": [row["day"] for row in report["series"]],
            "deliveries": [row["deliveries"] for row in report["series"]],
            "cost": [float(row["cost_usd"]) for row in report["series"]],
        },
    }


def _period_or_errors(request):
    try:
        return parse_period(request.GET), None
    except ValidationError as exc:
        return None, {field: " ".join(str(e) for e in errors) for field, errors in exc.detail.items()}


@login_required
@require_GET
def report(request):
    period, errors = _period_or_errors(request)
    if errors:
        context = {
            "errors": errors,
            "form": request.GET,
            "period_choices": PERIOD_CHOICES,
            "sessions": Session.objects.order_by("-created_at").values("id", "name")[:200],
        }
        return _page(request, "console/report.html", context, status=400, nav="reports")
    return _page(request, "console/report.html", _context(period, params=request.GET), nav="reports")


@login_required
@require_GET
def report_export(request, fmt: str):
    period, errors = _period_or_errors(request)
    table = request.GET.get("table", "deliveries")
    if fmt == "csv" and table not in TABLES:
        errors = (errors or {}) | {"table": f"must be one of {', '.join(TABLES)}"}
    if errors:
        return HttpResponse(
            "; ".join(f"{field}: {reason}" for field, reason in errors.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    data = delivery_report(period)
    stem = _filename(period)
    if fmt == "json":
        response = HttpResponse(report_json(data), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{stem}.json"'
    else:
        response = HttpResponse(report_csv(data, table=table), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{stem}-{table}.csv"'
    return response


@login_required
@require_GET
def report_pdf(request):
    period, errors = _period_or_errors(request)
    if errors:
        messages.error(request, "; ".join(f"{field}: {reason}" for field, reason in errors.items()))
        return redirect(reverse("reports:page"))
    try:
        pdf = report_pdf_bytes(period)
    except PdfUnavailable as exc:
        messages.error(request, str(exc))
        return redirect(f"{reverse('reports:page')}?{urlencode(period.query())}")
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{_filename(period)}.pdf"'
    return response


def report_pdf_bytes(period: Period) -> bytes:
    """The page, self-contained (inline styles and chart library), printed by Chromium."""
    context = _context(period) | {
        "pdf": True,
        "inline_css": "\n".join((STATIC / name).read_text(encoding="utf-8") for name in INLINE_ASSETS),
        "inline_chart_js": (STATIC / "vendor" / "chartjs" / "chart.umd.min.js").read_text(encoding="utf-8"),
        "inline_report_js": (STATIC / "js" / "report.js").read_text(encoding="utf-8"),
        "generated_at": timezone.now(),
        "nav": "reports",
    }
    return html_to_pdf(render_to_string("console/report_document.html", context))


def _filename(period: Period) -> str:
    scope = f"session-{period.session.pk}" if period.session else "all-sessions"
    last = (period.end - timezone.timedelta(microseconds=1)).date()
    return f"agent-hive-report-{scope}-{period.start.date()}-{last}"
