"""Rows a report is computed from: workflows with the tasks of their steps."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from coordination.models import Task, Workflow


def delivered_workflow(
    session,
    *,
    title,
    hours,
    delivered_days_ago=None,
    status=Workflow.Status.COMPLETED,
    cost="1.50",
    reviews=("success",),
    tests=("success",),
):
    """A workflow with its implement, review and test tasks, delivered `delivered_days_ago` (None: not delivered)."""
    now = timezone.now()
    delivered = now - timedelta(days=delivered_days_ago) if delivered_days_ago is not None else None
    workflow = Workflow.objects.create(
        session=session,
        pattern="feature_delivery",
        title=title,
        status=status,
        human_estimate_hours=Decimal(hours),
        completed_at=delivered or now,
        delivered_at=delivered,
    )
    finished = delivered or now
    started = finished - timedelta(minutes=30)
    Task.objects.create(
        workflow=workflow,
        session=session,
        step="implement",
        role="developer",
        title=title,
        status=Task.Status.COMPLETED,
        outcome="success",
        cost_usd=Decimal(cost),
        tokens_in=100,
        tokens_out=50,
        started_at=started,
        finished_at=finished,
    )
    for outcome in reviews:
        Task.objects.create(
            workflow=workflow,
            session=session,
            step="review",
            role="reviewer",
            title=title,
            status=Task.Status.COMPLETED,
            outcome=outcome,
            started_at=started,
            finished_at=finished,
        )
    for outcome in tests:
        status_ = Task.Status.COMPLETED if outcome == "success" else Task.Status.FAILED
        Task.objects.create(
            workflow=workflow,
            session=session,
            step="test",
            role="tester",
            title=title,
            status=status_,
            outcome=outcome,
            started_at=started,
            finished_at=finished,
        )
    return workflow
