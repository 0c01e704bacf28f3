"""Leases: a daemon keeps the tasks it runs by renewing their leases; what it no longer holds, it stops."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import Agent

from ...models import CoordinatorInstance, Task


def tasks_lease_renew(*, instance: CoordinatorInstance, task_ids: list[int], now=None) -> dict[int, int]:
    """Extend the leases this daemon still holds; returns {task id: attempt} of what it still holds.

    A task missing from the answer was reclaimed (or cancelled) meanwhile: its
    runtime should stop, and its result will be rejected by the fencing check.
    Lock order: tasks, then agents, each by id, so renewals never deadlock with other writers.
    """
    if not task_ids:
        return {}
    now = now or timezone.now()
    with transaction.atomic():
        held = list(
            Task.objects.select_for_update(of=("self",))
            .filter(pk__in=task_ids, lease_owner=instance, status=Task.Status.RUNNING)
            .order_by("id")
            .values_list("pk", "agent_id", "attempt")
        )
        if not held:
            return {}
        Task.objects.filter(pk__in=[pk for pk, _, _ in held]).update(
            lease_expires_at=now + timedelta(seconds=settings.HIVE["LEASE_SECONDS"])
        )
        agent_ids = sorted({agent_id for _, agent_id, _ in held if agent_id})
        locked_agents = Agent.objects.filter(pk__in=agent_ids).select_for_update().order_by("id").values("pk")
        Agent.objects.filter(pk__in=locked_agents).update(heartbeat_at=now)
    return {pk: attempt for pk, _, attempt in held}
