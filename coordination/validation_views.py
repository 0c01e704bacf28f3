"""The console's Validation page: runs of `validate_hive`, and a sandbox run started by an operator.

The run itself is a background process (metrics.validation.records.validation_sandbox_launch),
never the web request; its progress reaches the page as events on the live feed.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from metrics.serializers import ValidationStartSerializer
from metrics.validation import records
from metrics.validation import selectors as validation_selectors

from .exceptions import DomainError
from .views import _page, operator_required

RUNS_SHOWN = 50


@login_required
@require_GET
def validation(request):
    runs = [
        validation_selectors.validation_run_summary(run) for run in validation_selectors.validation_runs()[:RUNS_SHOWN]
    ]
    context = {
        "runs": runs,
        "running": any(not summary["run"].is_finished for summary in runs),
        "sandbox_faults": records.SANDBOX_FAULTS,
        "socket_path": "/ws/coordination/",
    }
    return _page(request, "console/validation.html", context, nav="validation")


@operator_required
@require_POST
def validation_start(request):
    data = {
        "minutes": request.POST.get("minutes") or 2,
        "faults": request.POST.getlist("faults"),
        "workflows": request.POST.get("workflows") or 0,
    }
    serializer = ValidationStartSerializer(data=data)
    if not serializer.is_valid():
        reasons = "; ".join(f"{field}: {' '.join(str(e) for e in errs)}" for field, errs in serializer.errors.items())
        messages.error(request, f"Not started: {reasons}")
        return redirect(reverse("console:validation"))
    try:
        run = records.validation_sandbox_launch(user=request.user, **serializer.validated_data)
    except DomainError as exc:
        messages.error(request, f"Not started: {exc.message}")
    else:
        messages.success(request, f"Validation #{run.pk} started in a sandbox; its progress appears below.")
    return redirect(reverse("console:validation"))
