"""Coordination state: sessions, workflows, tasks, events, decisions, daemons, deliveries.

The database is the source of truth; every change of state is written by a service
(coordination/services/) together with its CoordinationEvent. `from coordination.models
import X` works for every model; the modules below group them by subject.
"""

from __future__ import annotations

# API tokens live in coordination.access, intake sources and their deliveries in
# coordination.intake; importing them here registers them with the app (and its migrations).
from ..access.models import ApiToken
from ..intake.models import IntakeDelivery, IntakeSource
from .coordinators import CoordinatorInstance
from .decisions import Decision
from .deliveries import MergeLock, VerificationRun
from .events import CoordinationEvent, CoordinationEventQuerySet, EventPrune
from .sessions import Session, session_slug
from .work import (
    ESTIMATE_MAX_HOURS,
    PRIORITY_MAX,
    PRIORITY_MIN,
    Task,
    TaskAttempt,
    TaskQuerySet,
    Workflow,
    http_url,
)

__all__ = [
    "ESTIMATE_MAX_HOURS",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "ApiToken",
    "CoordinationEvent",
    "CoordinationEventQuerySet",
    "CoordinatorInstance",
    "Decision",
    "EventPrune",
    "IntakeDelivery",
    "IntakeSource",
    "MergeLock",
    "Session",
    "Task",
    "TaskAttempt",
    "TaskQuerySet",
    "Workflow",
    "VerificationRun",
    "http_url",
    "session_slug",
]
