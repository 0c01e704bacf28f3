"""Helpers for the WebSocket suite: sockets against the real ASGI stack, events written as services do."""

from __future__ import annotations

import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction
from django.utils import timezone

from coordination import livefeed
from coordination.events import EventDraft, events_record
from coordination.models import CoordinationEvent, Session
from hive_project.asgi import application
from tests.conftest import issue_token

ORIGIN = (b"origin", b"http://127.0.0.1")
TIMEOUT = 5


@pytest.fixture(autouse=True)
def fast_feed(settings):
    """Tail the table often so tests that rely on it do not wait; tests needing otherwise override it."""
    settings.LIVEFEED_TAIL_INTERVAL = 0.05
    yield
    if livefeed.running():
        livefeed._feed = None  # do not let one failed test break the next ones
        pytest.fail("a socket was left connected: the live feed is still running")
    listeners = [thread for thread in threading.enumerate() if thread.name == "livefeed-listener"]
    assert not listeners, "the live feed stopped but its channel-layer listener thread did not"


@pytest.fixture(autouse=True)
async def close_worker_connections():
    """database_sync_to_async keeps a connection in its worker thread; close it so the test database can go."""
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def token(transactional_db, operator):
    return issue_token(operator)


@pytest.fixture
def session_pair(transactional_db):
    return (
        Session.objects.create(name="alpha", workspace="/tmp/alpha"),
        Session.objects.create(name="beta", workspace="/tmp/beta"),
    )


def communicator(path: str, *, token: str | None = None, headers=(), origin=ORIGIN) -> WebsocketCommunicator:
    all_headers = [origin] if origin else []
    if token:
        all_headers.append((b"authorization", f"Token {token}".encode()))
    all_headers.extend(headers)
    return WebsocketCommunicator(application, path, headers=all_headers)


async def receive(socket: WebsocketCommunicator, timeout: float = TIMEOUT) -> dict:
    return await socket.receive_json_from(timeout=timeout)


async def receive_events(socket: WebsocketCommunicator, count: int, timeout: float = TIMEOUT) -> list[dict]:
    """The next `count` messages, which must all be events."""
    messages = [await receive(socket, timeout) for _ in range(count)]
    assert all(isinstance(message.get("id"), int) for message in messages), messages
    return messages


async def open_socket(path: str, *, token: str, **kwargs) -> tuple[WebsocketCommunicator, dict]:
    socket = communicator(path, token=token, **kwargs)
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected
    hello = await receive(socket)
    assert hello["type"] == "hello", hello
    return socket, hello


def _drafts(session: Session | None, count: int, label: str) -> list[EventDraft]:
    return [
        EventDraft(type="session_updated", message=f"{label} {i}", session_id=session.pk if session else None)
        for i in range(count)
    ]


@database_sync_to_async
def record_events(session: Session | None, count: int = 1, label: str = "event") -> list[int]:
    """Write events the way services do: in a transaction, published on commit."""
    with transaction.atomic():
        events = events_record(_drafts(session, count, label), now=timezone.now())
    return [event.pk for event in events]


@database_sync_to_async
def insert_events_unpublished(session: Session | None, count: int = 1, label: str = "silent") -> list[int]:
    """Write events as another process would whose publish never arrives (no on_commit hook)."""
    now = timezone.now()
    drafts = _drafts(session, count, label)
    events = CoordinationEvent.objects.bulk_create([draft.to_model(now=now) for draft in drafts])
    return [event.pk for event in events]


@database_sync_to_async
def event_ids(*, after: int = 0, session: Session | None = None) -> list[int]:
    rows = CoordinationEvent.objects.filter(id__gt=after).order_by("id")
    if session is not None:
        rows = rows.filter(session=session)
    return list(rows.values_list("id", flat=True))


async def assert_silent(socket: WebsocketCommunicator, wait: float = 0.3) -> None:
    assert await socket.receive_nothing(timeout=wait), "unexpected message"
