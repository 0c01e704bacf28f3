"""The event outbox: write CoordinationEvent rows in the caller's transaction,
publish them on the channel layer only after that transaction commits.

The database is the source of truth; the channel layer is the fast path, so a
publish failure is logged and clients catch up by replaying from the table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from agents.models import Agent

from .models import CoordinationEvent

logger = logging.getLogger(__name__)

GLOBAL_GROUP = "hive.events"
MESSAGE_TYPE = "coordination.events"


def session_group(session_id: int) -> str:
    return f"hive.session.{session_id}"


def participant(agent: Agent | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {"id": agent.pk, "name": agent.name, "role": agent.role}


def participants(*agents: Agent | None) -> list[dict[str, Any]]:
    seen: set[int] = set()
    out = []
    for agent in agents:
        if agent is not None and agent.pk not in seen:
            seen.add(agent.pk)
            out.append(participant(agent))
    return out


@dataclass
class EventDraft:
    """An event about to be written; built by services, written in bulk."""

    type: str
    message: str = ""
    session_id: int | None = None
    workflow_id: int | None = None
    task_id: int | None = None
    agent_id: int | None = None
    participants: list[dict] = field(default_factory=list)
    collaboration_data: dict = field(default_factory=dict)
    business_impact: dict = field(default_factory=dict)
    simulated: bool = False

    def to_model(self, *, now) -> CoordinationEvent:
        return CoordinationEvent(
            type=self.type,
            message=self.message[:500],
            session_id=self.session_id,
            workflow_id=self.workflow_id,
            task_id=self.task_id,
            agent_id=self.agent_id,
            participants=self.participants,
            collaboration_data=self.collaboration_data,
            business_impact=self.business_impact,
            simulated=self.simulated,
            created_at=now,
        )


def events_record(drafts: Sequence[EventDraft], *, now) -> list[CoordinationEvent]:
    """Write events in the current transaction and publish them after it commits."""
    if not drafts:
        return []
    events = CoordinationEvent.objects.bulk_create([draft.to_model(now=now) for draft in drafts])
    payloads = [event_payload(event) for event in events]
    transaction.on_commit(lambda: publish(payloads))
    return events


def event_record(draft: EventDraft, *, now) -> CoordinationEvent:
    return events_record([draft], now=now)[0]


def event_payload(event: CoordinationEvent) -> dict[str, Any]:
    """The one shape every client receives (API, WebSocket, console)."""
    return {
        "id": event.pk,
        "type": event.type,
        "message": event.message,
        "session": event.session_id,
        "workflow": event.workflow_id,
        "task": event.task_id,
        "agent": event.agent_id,
        "participants": event.participants,
        "context": event.collaboration_data,
        "businessImpact": event.business_impact,
        "simulated": event.simulated,
        "created_at": event.created_at.isoformat(),
    }


def publish(payloads: Iterable[dict[str, Any]]) -> None:
    """Send committed events to the global group and each session's group, one message per group."""
    payloads = list(payloads)
    layer = get_channel_layer()
    if layer is None or not payloads:
        return
    by_session: dict[int, list[dict]] = {}
    for payload in payloads:
        if payload["session"] is not None:
            by_session.setdefault(payload["session"], []).append(payload)
    try:
        send = async_to_sync(_send_all)
        send(layer, payloads, by_session)
    except Exception:  # the table is the source of truth; clients replay what they missed
        logger.warning("Publishing %d events failed; clients will replay them", len(payloads), exc_info=True)


async def _send_all(layer, payloads: list[dict], by_session: dict[int, list[dict]]) -> None:
    await layer.group_send(GLOBAL_GROUP, {"type": MESSAGE_TYPE, "events": payloads})
    for session_id, session_payloads in by_session.items():
        await layer.group_send(session_group(session_id), {"type": MESSAGE_TYPE, "events": session_payloads})
