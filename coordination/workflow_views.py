"""The console's workflow page: its steps and attempts, branch, rendered diff, verification runs, merge queue."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from .delivery_reads import merge_queue, verification_runs, workflow_diff
from .exceptions import ConflictError
from .models import CoordinationEvent, Task, TaskAttempt, Workflow
from .views import _page

# The page carries the diff twice (rendered and raw), so it stays smaller than the API's.
PAGE_DIFF_LIMIT_BYTES = 512 * 1024
PAGE_RUNS = 100
PAGE_EVENTS = 50
DELIVERY_EVENTS = (
    CoordinationEvent.Type.VERIFICATION_PASSED,
    CoordinationEvent.Type.VERIFICATION_FAILED,
    CoordinationEvent.Type.FILES_OUTSIDE_DECLARED,
    CoordinationEvent.Type.MERGE_QUEUED,
    CoordinationEvent.Type.MERGE_CONFLICT,
    CoordinationEvent.Type.MERGED,
    CoordinationEvent.Type.DELIVERED,
)


@login_required
@require_GET
def workflow_detail(request, pk: int):
    attempts = TaskAttempt.objects.select_related("agent").order_by("number")
    tasks = Task.objects.select_related("agent").prefetch_related(Prefetch("attempts", queryset=attempts))
    workflow = get_object_or_404(
        Workflow.objects.select_related("session").prefetch_related(Prefetch("tasks", queryset=tasks.order_by("id"))),
        pk=pk,
    )
    diff, diff_problem = None, ""
    if workflow.session.repository:
        try:
            diff = workflow_diff(workflow=workflow, limit=PAGE_DIFF_LIMIT_BYTES)
        except ConflictError as exc:
            diff_problem = next(iter(exc.errors.values()), exc.message)
    queue = list(merge_queue(session=workflow.session))
    context = {
        "workflow": workflow,
        "session": workflow.session,
        "tasks": list(workflow.tasks.all()),
        "diff": diff,
        "diff_problem": diff_problem,
        "runs": list(verification_runs(workflow=workflow)[:PAGE_RUNS]),
        "queue": queue,
        "queue_position": next((i for i, w in enumerate(queue, start=1) if w.pk == workflow.pk), None),
        # Live: every event of the session re-renders the page's live regions (see static/js/console.js).
        "socket_path": f"/ws/coordination/sessions/{workflow.session_id}/",
        "events": list(
            CoordinationEvent.objects.filter(workflow=workflow, type__in=DELIVERY_EVENTS).order_by("-id")[:PAGE_EVENTS]
        ),
    }
    return _page(request, "console/workflow.html", context, nav="sessions")
