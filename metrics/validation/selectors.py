"""Reading validation runs for the console and the API."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from ..models import ValidationRun


def validation_runs() -> QuerySet[ValidationRun]:
    """Every run, latest first (validation_run_latest_idx), with who started it."""
    return ValidationRun.objects.select_related("started_by").order_by("-started_at", "-id")


def validation_run_summary(run: ValidationRun) -> dict[str, Any]:
    """The headline figures of one run, each with whether it missed its threshold."""
    figures = run.figures or {}
    failed = set(run.failed_checks or [])
    success = figures.get("coordination_success") or {}
    once = figures.get("exactly_once") or {}
    events = figures.get("events") or {}
    latency = figures.get("handoff_latency") or {}
    repo = once.get("repository") or {}
    return {
        "run": run,
        "measured": bool(figures),
        "duration_s": (run.finished_at - run.started_at).total_seconds() if run.finished_at else None,
        "success": {
            "ratio": success.get("ratio"),
            "delivered": success.get("delivered_unaided"),
            "concluded": success.get("denominator"),
            "threshold": (run.options or {}).get("min_success"),
            "failed": "coordination_success" in failed,
        },
        "exactly_once": [
            {
                "name": "completed twice",
                "count": len(once.get("duplicate_completions") or []),
                "failed": "duplicate_completions" in failed,
            },
            {
                "name": "assigned twice",
                "count": len(once.get("tasks_assigned_twice") or []),
                "failed": "tasks_assigned_twice" in failed,
            },
            {"name": "lost", "count": len(once.get("tasks_lost") or []), "failed": "tasks_lost" in failed},
            {
                "name": "repository duplicates",
                "count": len(repo.get("duplicated") or []),
                "failed": "repository_duplicates" in failed,
            },
        ],
        "reclaim": [
            {
                "daemon": k.get("daemon"),
                "seconds": k.get("reclaimed_s"),
                "in_flight": k.get("in_flight"),
                "failed": bool(k.get("not_reclaimed")),
            }
            for k in figures.get("reclaim") or []
        ],
        "handoff": {"p50": latency.get("p50"), "p95": latency.get("p95")},
        "events": {
            "completeness": events.get("completeness"),
            "seen": events.get("seen"),
            "table": events.get("table"),
            "failed": "event_completeness" in failed,
        },
        "other_failures": sorted(
            failed
            - {
                "coordination_success",
                "duplicate_completions",
                "tasks_assigned_twice",
                "tasks_lost",
                "repository_duplicates",
                "event_completeness",
            }
        ),
    }
