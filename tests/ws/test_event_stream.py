"""The live event stream: authentication, scoping, replay, live delivery and the table tail."""

from __future__ import annotations

import contextlib
import logging
import os
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.utils import timezone

from coordination import livefeed
from coordination.events import event_payload, publish
from coordination.models import CoordinationEvent

from .conftest import (
    assert_silent,
    communicator,
    event_ids,
    insert_events_unpublished,
    open_socket,
    receive,
    receive_events,
    record_events,
)

pytestmark = pytest.mark.django_db(transaction=True)

GLOBAL = "/ws/coordination/"


@pytest.fixture
async def sockets():
    """Sockets opened by a test; all disconnected at teardown, whatever happened."""
    opened = []
    yield opened
    for socket in opened:
        with contextlib.suppress(BaseException):  # already closed, or cancelled by a failed receive
            await socket.disconnect()


async def connect(sockets, path, **kwargs):
    socket, hello = await open_socket(path, **kwargs)
    sockets.append(socket)
    return socket, hello


async def refused_with(path, code, **kwargs):
    """The server accepts, then closes with `code` (so a browser sees the reason)."""
    socket = communicator(path, **kwargs)
    connected, _ = await socket.connect()
    try:
        assert connected
        message = await socket.receive_output(timeout=5)
        while message["type"] == "websocket.send":  # an error detail may precede the close
            message = await socket.receive_output(timeout=5)
        assert message == {"type": "websocket.close", "code": code}
    finally:
        await socket.disconnect()


def session_path(session) -> str:
    return f"/ws/coordination/sessions/{session.pk}/"


# --- Authentication and routing ---------------------------------------------------------------


async def test_anonymous_socket_is_refused_with_4401():
    await refused_with(GLOBAL, 4401)


async def test_unknown_token_is_refused_with_4401(token):
    await refused_with(GLOBAL, 4401, token="not-a-token")
    await refused_with(f"{GLOBAL}?token=not-a-token", 4401)


async def test_token_in_header_authenticates(sockets, token):
    socket, hello = await connect(sockets, GLOBAL, token=token)
    assert hello == {"type": "hello", "last_event_id": 0, "after": None}


async def test_token_in_query_authenticates(sockets, token):
    _, hello = await connect(sockets, f"{GLOBAL}?token={token}", token=None)
    assert hello["type"] == "hello"


async def test_session_cookie_authenticates(sockets, viewer):
    client = Client()
    await database_sync_to_async(client.force_login)(viewer)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    _, hello = await connect(sockets, GLOBAL, token=None, headers=[(b"cookie", cookie)])
    assert hello["type"] == "hello"


async def test_foreign_origin_is_refused(token):
    socket = communicator(GLOBAL, token=token, origin=(b"origin", b"http://evil.example"))
    connected, _ = await socket.connect()
    assert not connected


async def test_without_origin_a_token_authenticates_and_a_cookie_does_not(sockets, token, viewer):
    # No Origin: not a browser, so no cookie to protect; the token is the credential.
    _, hello = await connect(sockets, GLOBAL, token=token, origin=None)
    assert hello["type"] == "hello"
    client = Client()
    await database_sync_to_async(client.force_login)(viewer)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    await refused_with(GLOBAL, 4401, origin=None, headers=[(b"cookie", cookie)])
    await refused_with(GLOBAL, 4401, token="not-a-token", origin=None)


async def test_unknown_session_is_refused_with_4404(token):
    await refused_with("/ws/coordination/sessions/999999/", 4404, token=token)
    await refused_with("/ws/coordination/sessions/abc/", 4404, token=token)


async def test_bad_after_is_refused_with_4400(token):
    await refused_with(f"{GLOBAL}?after=yesterday", 4400, token=token)


# --- Client messages --------------------------------------------------------------------------


async def test_ping_is_answered_and_bad_messages_do_not_break_the_socket(sockets, token):
    socket, _ = await connect(sockets, GLOBAL, token=token)
    await socket.send_json_to({"type": "ping", "t": 1234.5})
    assert await receive(socket) == {"type": "pong", "t": 1234.5}
    await socket.send_json_to({"type": "ping"})
    assert await receive(socket) == {"type": "pong"}

    await socket.send_to(text_data="{not json")
    assert (await receive(socket))["type"] == "error"
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await receive(socket))["type"] == "error"
    await socket.send_json_to(["ping"])
    assert (await receive(socket))["type"] == "error"
    await socket.send_json_to({"type": "subscribe", "to": "everything"})
    assert (await receive(socket))["type"] == "error"

    await socket.send_json_to({"type": "ping", "t": "still here"})
    assert await receive(socket) == {"type": "pong", "t": "still here"}


# --- Live delivery ----------------------------------------------------------------------------


async def test_session_socket_gets_only_its_session(sockets, token, session_pair):
    alpha, beta = session_pair
    alpha_socket, _ = await connect(sockets, session_path(alpha), token=token)
    global_socket, _ = await connect(sockets, GLOBAL, token=token)

    beta_ids = await record_events(beta, 2, "beta")
    alpha_ids = await record_events(alpha, 2, "alpha")

    alpha_events = await receive_events(alpha_socket, 2)
    assert [event["id"] for event in alpha_events] == alpha_ids
    assert {event["session"] for event in alpha_events} == {alpha.pk}
    await assert_silent(alpha_socket)
    everything = await receive_events(global_socket, 4)
    assert [event["id"] for event in everything] == beta_ids + alpha_ids


async def test_event_message_is_the_event_payload(sockets, token, session_pair):
    alpha, _ = session_pair
    socket, _ = await connect(sockets, GLOBAL, token=token)
    [event_id] = await record_events(alpha, 1, "shape")
    [message] = await receive_events(socket, 1)
    stored = await database_sync_to_async(CoordinationEvent.objects.get)(pk=event_id)
    assert message == event_payload(stored)


async def test_without_after_only_live_events_arrive(sockets, token, session_pair):
    alpha, _ = session_pair
    old = await record_events(alpha, 3, "before")
    socket, hello = await connect(sockets, GLOBAL, token=token)
    assert hello == {"type": "hello", "last_event_id": old[-1], "after": None}
    await assert_silent(socket)
    new = await record_events(alpha, 2, "after")
    assert [event["id"] for event in await receive_events(socket, 2)] == new


async def test_table_tail_delivers_events_written_without_a_publish(sockets, token, session_pair):
    """The daemon is another process: without Redis its publish never reaches this one."""
    alpha, beta = session_pair
    global_socket, _ = await connect(sockets, GLOBAL, token=token)
    beta_socket, _ = await connect(sockets, session_path(beta), token=token)

    ids = await insert_events_unpublished(alpha, 3)
    ids += await insert_events_unpublished(beta, 2)

    assert [event["id"] for event in await receive_events(global_socket, 5)] == ids
    assert [event["id"] for event in await receive_events(beta_socket, 2)] == ids[3:]


async def test_gap_in_live_delivery_is_filled_from_the_table(sockets, token, session_pair, settings):
    settings.LIVEFEED_TAIL_INTERVAL = 3600  # only the gap may send the feed to the table
    alpha, _ = session_pair
    socket, _ = await connect(sockets, GLOBAL, token=token)

    unpublished = await insert_events_unpublished(alpha, 2)
    published = await record_events(alpha, 1, "published")

    assert [event["id"] for event in await receive_events(socket, 3)] == unpublished + published


async def test_id_that_never_appears_is_given_up_after_the_grace(sockets, token, monkeypatch, settings):
    """A rolled-back insert leaves a hole in the ids; the events after it still arrive."""
    settings.LIVEFEED_TAIL_INTERVAL = 3600
    monkeypatch.setattr(livefeed, "GAP_GRACE", 0.2)
    await record_events(None, 1)  # the feed starts from a real id, not from an empty table
    socket, hello = await connect(sockets, GLOBAL, token=token)
    after_hole = event_payload(
        CoordinationEvent(id=hello["last_event_id"] + 2, type="session_updated", created_at=timezone.now())
    )
    await database_sync_to_async(publish)([after_hole])
    [event] = await receive_events(socket, 1)
    assert event == after_hole


# --- Replay -----------------------------------------------------------------------------------


async def test_replay_after_cursor_then_live_without_duplicates(sockets, token, session_pair, monkeypatch):
    monkeypatch.setattr(livefeed, "BATCH", 4)  # several batched reads
    alpha, beta = session_pair
    ids = await insert_events_unpublished(alpha, 6)
    ids += await record_events(beta, 5)
    cursor = ids[1]

    socket, hello = await connect(sockets, f"{GLOBAL}?after={cursor}", token=token)
    assert hello == {"type": "hello", "last_event_id": ids[-1], "after": cursor}
    replayed = await receive_events(socket, len(ids) - 2)
    assert [event["id"] for event in replayed] == ids[2:]
    assert await receive(socket) == {"type": "replay_done", "count": len(ids) - 2, "last_event_id": ids[-1]}

    # Events already replayed and published again (late publish, second path) are not sent twice.
    stored = await database_sync_to_async(lambda: list(CoordinationEvent.objects.filter(pk__in=ids[-3:])))()
    await database_sync_to_async(publish)([event_payload(event) for event in stored])
    new = await record_events(alpha, 2, "live")
    assert [event["id"] for event in await receive_events(socket, 2)] == new
    await assert_silent(socket)


async def test_session_replay_returns_only_that_session(sockets, token, session_pair):
    alpha, beta = session_pair
    await insert_events_unpublished(alpha, 3)
    await insert_events_unpublished(beta, 3)
    await insert_events_unpublished(alpha, 2)
    alpha_ids = await event_ids(session=alpha)

    socket, hello = await connect(sockets, f"{session_path(alpha)}?after=0", token=token)
    assert hello["last_event_id"] == alpha_ids[-1]
    assert [event["id"] for event in await receive_events(socket, 5)] == alpha_ids
    assert await receive(socket) == {"type": "replay_done", "count": 5, "last_event_id": alpha_ids[-1]}
    await assert_silent(socket)


async def test_events_written_during_replay_arrive_once_in_order(sockets, token, session_pair, monkeypatch):
    """Live events that land while a socket replays are buffered and merged by id."""
    monkeypatch.setattr(livefeed, "BATCH", 2)
    alpha, _ = session_pair
    first = await insert_events_unpublished(alpha, 5)
    written: list[int] = []
    replay = livefeed.SocketStream.replay

    async def replay_while_writing(self, *, after, upto):
        written.extend(await record_events(alpha, 2, "during replay"))  # published while replaying
        written.extend(await insert_events_unpublished(alpha, 1))  # and one only the tail sees
        return await replay(self, after=after, upto=upto)

    monkeypatch.setattr(livefeed.SocketStream, "replay", replay_while_writing)
    socket, _ = await connect(sockets, f"{GLOBAL}?after=0", token=token)
    replayed = await receive_events(socket, len(first))
    done = await receive(socket)
    assert done["type"] == "replay_done"
    live = await receive_events(socket, len(written))
    assert [event["id"] for event in replayed + live] == first + written
    await assert_silent(socket)


# --- Channel layers ---------------------------------------------------------------------------


async def test_publish_failure_never_raises_and_the_table_delivers(sockets, token, session_pair, settings, caplog):
    """A Redis outage: publishing fails fast with a warning, the feed serves from the table."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]}}
    }
    settings.EVENT_PUBLISH_TIMEOUT = 0.5
    alpha, _ = session_pair
    socket, _ = await connect(sockets, GLOBAL, token=token)
    caplog.set_level(logging.WARNING, logger="coordination.events")

    started = time.monotonic()
    ids = await record_events(alpha, 3, "redis down")
    assert time.monotonic() - started < 5, "publishing blocked the writer"
    assert "Publishing 3 events failed" in caplog.text
    assert [event["id"] for event in await receive_events(socket, 3)] == ids


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL for the real RedisChannelLayer")
async def test_redis_layer_delivers_without_the_tail(sockets, token, session_pair, settings):
    from channels_redis.core import RedisChannelLayer

    assert isinstance(get_channel_layer(), RedisChannelLayer)
    settings.LIVEFEED_TAIL_INTERVAL = 3600  # nothing but the published message can deliver
    alpha, beta = session_pair
    socket, _ = await connect(sockets, session_path(beta), token=token)
    await record_events(alpha, 2)
    ids = await record_events(beta, 3)
    assert [event["id"] for event in await receive_events(socket, 3)] == ids


async def test_feed_stops_with_the_last_socket(token):
    first = communicator(GLOBAL, token=token)
    second = communicator(GLOBAL, token=token)
    for socket in (first, second):
        assert (await socket.connect())[0]
        await receive(socket)
    assert livefeed.running()
    await first.disconnect()
    assert livefeed.running()
    await second.disconnect()
    assert not livefeed.running()
