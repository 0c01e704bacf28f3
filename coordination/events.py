"""The event outbox: write CoordinationEvent rows in the caller's transaction,
publish them on the channel layer only after that transaction commits.

The database is the source of truth; the channel layer is the fast path, so a
publish failure is logged and clients catch up by replaying from the table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction

from agents.models import Agent
from agents.redaction import redact, redact_text

from .actors import current_actor
from .models import CoordinationEvent

logger = logging.getLogger(__name__)

GLOBAL_GROUP = "hive.events"
MESSAGE_LIMIT = 500  # CoordinationEvent.message's length
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
    # Who made the change; left empty, the actor of the context it is drafted in (coordination.actors).
    actor: str = ""
    actor_token: str = ""

    def __post_init__(self) -> None:
        if not self.actor:
            acting = current_actor()
            self.actor, self.actor_token = acting.name, acting.token
        # Secrets never reach an event: whichever writer stores the draft, it stores these.
        self.message = redact_text(self.message)
        self.collaboration_data = redact(self.collaboration_data)
        self.business_impact = redact(self.business_impact)

    def to_model(self, *, now) -> CoordinationEvent:
        return CoordinationEvent(
            type=self.type,
            message=self.message[:MESSAGE_LIMIT],
            session_id=self.session_id,
            workflow_id=self.workflow_id,
            task_id=self.task_id,
            agent_id=self.agent_id,
            participants=self.participants,
            collaboration_data=self.collaboration_data,
            business_impact=self.business_impact,
            simulated=self.simulated,
            actor=self.actor,
            actor_token=self.actor_token,
            created_at=now,
        )


def events_record(drafts: Sequence[EventDraft], *, now) -> list[CoordinationEvent]:
    """Write events in the current transaction and publish them after it commits."""
    if not drafts:
        return []
    events = CoordinationEvent.objects.bulk_create([draft.to_model(now=now) for draft in drafts])
    publish_on_commit([event_payload(event) for event in events])
    return events


def event_record(draft: EventDraft, *, now) -> CoordinationEvent:
    return events_record([draft], now=now)[0]


def event_payload(event: CoordinationEvent) -> dict[str, Any]:
    """The one shape every client receives (API, WebSocket, console)."""
    return _payload(
        pk=event.pk,
        type=event.type,
        message=event.message,
        session=event.session_id,
        workflow=event.workflow_id,
        task=event.task_id,
        agent=event.agent_id,
        participants=event.participants,
        context=event.collaboration_data,
        business_impact=event.business_impact,
        simulated=event.simulated,
        actor=event.actor,
        actor_token=event.actor_token,
        created_at=event.created_at,
    )


def draft_payload(draft: EventDraft, *, pk: int, now) -> dict[str, Any]:
    """event_payload of the row `draft` was stored as (id `pk`, created at `now`), without loading it."""
    return _payload(
        pk=pk,
        type=draft.type,
        message=draft.message[:MESSAGE_LIMIT],
        session=draft.session_id,
        workflow=draft.workflow_id,
        task=draft.task_id,
        agent=draft.agent_id,
        participants=draft.participants,
        context=draft.collaboration_data,
        business_impact=draft.business_impact,
        simulated=draft.simulated,
        actor=draft.actor,
        actor_token=draft.actor_token,
        created_at=now,
    )


def _payload(
    *,
    pk,
    type,
    message,
    session,
    workflow,
    task,
    agent,
    participants,
    context,
    business_impact,
    simulated,
    actor,
    actor_token,
    created_at,
) -> dict[str, Any]:
    return {
        "id": pk,
        "type": type,
        "message": message,
        "session": session,
        "workflow": workflow,
        "task": task,
        "agent": agent,
        "participants": participants,
        "context": context,
        "businessImpact": business_impact,
        "simulated": simulated,
        "actor": actor,
        "actorToken": actor_token,
        "created_at": created_at.isoformat(),
    }


_collecting = threading.local()


@contextmanager
def one_publish():
    """Collect the events written inside into one publish after commit (one message per group).

    Used inside an atomic block; payloads keep the order they were written in.
    """
    if getattr(_collecting, "payloads", None) is not None:  # already collecting: the outer block publishes
        yield
        return
    payloads: list[dict] = []
    _collecting.payloads = payloads
    try:
        yield
    finally:
        _collecting.payloads = None
    if payloads:
        transaction.on_commit(lambda: publish(payloads))


def publish_on_commit(payloads: list[dict[str, Any]]) -> None:
    """Publish `payloads` once the current transaction commits (with the rest of a one_publish block)."""
    pending = getattr(_collecting, "payloads", None)
    if pending is not None:
        pending.extend(payloads)
    else:
        transaction.on_commit(lambda: publish(payloads))


def publish(payloads: Iterable[dict[str, Any]]) -> None:
    """Send committed events to the global group and each session's group, one message per group.

    Never raises and never blocks longer than EVENT_PUBLISH_TIMEOUT: the table is the
    source of truth, and every web process's live feed replays from it what the channel
    layer did not carry. After a failure, publishing pauses for PUBLISH_BACKOFF seconds
    so a dead Redis does not cost every commit of a busy daemon a timeout.
    """
    payloads = list(payloads)
    if not payloads:
        return
    try:
        layer = get_channel_layer()
    except Exception:
        logger.warning("No channel layer; %d events stay in the table for replay", len(payloads), exc_info=True)
        return
    if layer is None:
        return
    if _backoff.active(layer):
        logger.debug("Channel layer paused after a failure; %d events left for replay", len(payloads))
        return
    by_session: dict[int, list[dict]] = {}
    for payload in payloads:
        if payload["session"] is not None:
            by_session.setdefault(payload["session"], []).append(payload)
    timeout = float(getattr(settings, "EVENT_PUBLISH_TIMEOUT", 1.0))
    try:
        if isinstance(layer, InMemoryChannelLayer):
            # Its queues belong to the web server's event loop; async_to_sync gets back onto it.
            async_to_sync(_send_all)(layer, payloads, by_session, timeout)
        else:
            _publisher.run(_send_all(layer, payloads, by_session, timeout), timeout=timeout + 0.5)
    except Exception as exc:  # the table is the source of truth; clients replay what they missed
        _backoff.fail(layer)
        # One line: an outage is expected weather, not a bug (the traceback would repeat on every commit).
        logger.warning(
            "Publishing %d events failed (%s: %s); live feeds will deliver them from the table",
            len(payloads),
            type(exc).__name__,
            exc,
        )
    else:
        _backoff.succeed(layer)


async def _send_all(layer, payloads: list[dict], by_session: dict[int, list[dict]], timeout: float) -> None:
    async def send() -> None:
        await layer.group_send(GLOBAL_GROUP, {"type": MESSAGE_TYPE, "events": payloads})
        for session_id, session_payloads in by_session.items():
            await layer.group_send(session_group(session_id), {"type": MESSAGE_TYPE, "events": session_payloads})

    await asyncio.wait_for(send(), timeout=timeout)


class _PublisherLoop:
    """One event loop thread per process that sends to a networked layer (channels-redis).

    Reusing one loop keeps one Redis connection pool instead of opening a connection per
    commit; callers still wait (bounded) for their send, so events leave in commit order.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="hive-event-publisher", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def run(self, coroutine, *, timeout: float) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._ensure())
        try:
            future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


class _Backoff:
    """Remembers a failed layer for a few seconds (per layer object, so settings overrides reset it)."""

    def __init__(self):
        self._layer_id = 0
        self._until = 0.0

    def active(self, layer) -> bool:
        return self._layer_id == id(layer) and time.monotonic() < self._until

    def fail(self, layer) -> None:
        self._layer_id, self._until = id(layer), time.monotonic() + PUBLISH_BACKOFF

    def succeed(self, layer) -> None:
        if self._layer_id == id(layer) and self._until:
            logger.info("Channel layer reachable again; publishing resumed")
            self._until = 0.0


# Seconds publishing pauses after a failed send (the live feeds' table tail covers the pause).
PUBLISH_BACKOFF = 5.0
_publisher = _PublisherLoop()
_backoff = _Backoff()
