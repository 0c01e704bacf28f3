"""Operator actions over the socket are recorded under the socket's user and the token it was opened with."""

from __future__ import annotations

import contextlib

import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from coordination.models import CoordinationEvent, Session
from tests.conftest import issue_token

from .conftest import open_socket, receive

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def pause_events() -> list[tuple[str, str]]:
    return list(CoordinationEvent.objects.filter(type="agent_paused").values_list("actor", "actor_token"))


async def test_a_socket_action_records_its_user_and_token(operator):
    session = await database_sync_to_async(Session.objects.create)(name="alpha", workspace="/tmp/alpha")
    agent = await database_sync_to_async(Agent.objects.create)(name="dev-1", role="developer", session=session)
    secret = await database_sync_to_async(issue_token)(operator, scope="operate", name="phone")
    socket, _ = await open_socket("/ws/coordination/", token=secret)
    try:
        await socket.send_json_to({"type": "agent.pause", "agent": agent.pk, "reason": "lunch", "ref": 1})
        reply = await receive(socket)
        while isinstance(reply.get("id"), int):  # live events go by first
            reply = await receive(socket)
        assert (reply["type"], reply["status"]) == ("result", 200)
    finally:
        with contextlib.suppress(BaseException):
            await socket.disconnect()
    assert await pause_events() == [("operator", "phone")]
