"""A socket whose replay cursor fell below the retention horizon is told so, never silently skipped."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone

from coordination import livefeed
from coordination.events import EventDraft, events_record
from coordination.services import retention

from .conftest import communicator, event_ids, open_socket, receive, receive_events

pytestmark = pytest.mark.django_db(transaction=True)

GLOBAL = "/ws/coordination/"


@database_sync_to_async
def old_then_young_pruned() -> tuple[list[int], list[int]]:
    """Four events 100 days old (pruned) and two from today (kept)."""
    with transaction.atomic():
        old = events_record(
            [EventDraft(type="session_updated", message=f"old {i}") for i in range(4)],
            now=timezone.now() - timedelta(days=100),
        )
        young = events_record(
            [EventDraft(type="session_updated", message=f"young {i}") for i in range(2)], now=timezone.now()
        )
    retention.events_prune(older_than=timedelta(days=90))
    return [e.pk for e in old], [e.pk for e in young]


async def test_a_cursor_below_the_horizon_gets_an_error_frame_and_4410(token):
    old, young = await old_then_young_pruned()
    socket = communicator(f"{GLOBAL}?after={old[0]}", token=token)
    connected, _ = await socket.connect()
    try:
        assert connected
        frame = await receive(socket)
        assert frame["type"] == "error" and frame["code"] == "cursor_expired"
        assert (frame["after"], frame["pruned_through"], frame["oldest_kept_id"]) == (old[0], old[-1], young[0])
        assert f"resume with after={old[-1]}" in frame["detail"]
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4410}
    finally:
        await socket.disconnect()


async def test_a_cursor_at_the_horizon_replays_what_is_kept(token):
    old, young = await old_then_young_pruned()
    kept = await event_ids(after=old[-1])
    socket, hello = await open_socket(f"{GLOBAL}?after={old[-1]}", token=token)
    try:
        assert hello["after"] == old[-1]
        replayed = await receive_events(socket, len(kept))
        assert [e["id"] for e in replayed] == kept and kept[:2] == young
        done = await receive(socket)
        assert done["type"] == "replay_done" and done["count"] == len(kept)
    finally:
        await socket.disconnect()


async def test_a_prune_during_the_replay_is_reported_at_its_end(token, monkeypatch):
    """Retention that commits while a socket replays: the socket is told, even if it may have seen them."""
    ids = await database_sync_to_async(_old_recent_and_new)()

    original = livefeed.SocketStream.replay

    async def replay_then_prune(self, *, after, upto):
        count = await original(self, after=after, upto=upto)
        await database_sync_to_async(retention.events_prune)(older_than=timedelta(hours=2))
        return count

    monkeypatch.setattr(livefeed.SocketStream, "replay", replay_then_prune)
    socket = communicator(f"{GLOBAL}?after={ids['horizon']}", token=token)
    connected, _ = await socket.connect()
    try:
        assert connected
        frames = []
        while True:
            message = await socket.receive_output(timeout=5)
            if message["type"] == "websocket.close":
                break
            frames.append(json.loads(message["text"]))
        assert message["code"] == 4410
        assert frames[-1]["code"] == "cursor_expired" and frames[-1]["pruned_through"] == ids["recent"][-1]
        assert not any(frame.get("type") == "replay_done" for frame in frames)
    finally:
        await socket.disconnect()


def _old_recent_and_new() -> dict:
    """Events 100 days old (pruned at once), 3 hours old and new; returns their ids and the horizon."""
    now = timezone.now()
    with transaction.atomic():
        old = events_record([EventDraft(type="session_updated", message="old")], now=now - timedelta(days=100))
        recent = events_record(
            [EventDraft(type="session_updated", message=f"recent {i}") for i in range(3)], now=now - timedelta(hours=3)
        )
        events_record([EventDraft(type="session_updated", message="new")], now=now)
    run = retention.events_prune(older_than=timedelta(days=90))
    assert run.pruned_through_id == old[-1].pk
    return {"horizon": run.pruned_through_id, "recent": [e.pk for e in recent]}
