"""Operator actions over the socket: token scope and user rights decide, as over HTTP."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session as StoredSession
from django.test import Client
from django.utils import timezone

from agents.models import Agent
from coordination.access.services import token_revoke
from coordination.models import ApiToken, Session
from coordination.permissions import OPERATOR_MESSAGE, READ_SCOPE_MESSAGE
from tests.conftest import issue_token

from .conftest import communicator, open_socket, receive

pytestmark = pytest.mark.django_db(transaction=True)

GLOBAL = "/ws/coordination/"


@pytest.fixture
async def sockets():
    opened = []
    yield opened
    for socket in opened:
        with contextlib.suppress(BaseException):
            await socket.disconnect()


@pytest.fixture
def agent(transactional_db):
    session = Session.objects.create(name="alpha", workspace="/tmp/alpha")
    return Agent.objects.create(name="dev-1", role="developer", session=session)


async def connect(sockets, **kwargs):
    socket, _ = await open_socket(GLOBAL, **kwargs)
    sockets.append(socket)
    return socket


async def ask(socket, message: dict) -> dict:
    await socket.send_json_to(message)
    reply = await receive(socket)
    while isinstance(reply.get("id"), int):  # skip live events
        reply = await receive(socket)
    return reply


@database_sync_to_async
def agent_status(agent) -> str:
    return Agent.objects.get(pk=agent.pk).status


async def test_a_read_scoped_token_gets_403_for_every_operator_action(sockets, operator, agent):
    secret = await database_sync_to_async(issue_token)(operator, scope="read")
    socket = await connect(sockets, token=secret)
    for message in [
        {"type": "agent.pause", "agent": agent.pk, "reason": "lunch"},
        {"type": "agent.resume", "agent": agent.pk},
        {"type": "agent.restart", "agent": agent.pk},
        {"type": "decision.answer", "decision": 1, "option": "approve"},
    ]:
        reply = await ask(socket, {**message, "ref": message["type"]})
        assert reply == {
            "type": "error",
            "action": message["type"],
            "ref": message["type"],
            "status": 403,
            "code": "permission_denied",
            "detail": READ_SCOPE_MESSAGE,
            "errors": {},
        }
    assert await agent_status(agent) == "idle"
    # Reading goes on.
    assert await ask(socket, {"type": "ping", "t": 1}) == {"type": "pong", "t": 1}


async def test_a_viewer_gets_403(sockets, viewer, agent):
    secret = await database_sync_to_async(issue_token)(viewer)
    socket = await connect(sockets, token=secret)
    reply = await ask(socket, {"type": "agent.pause", "agent": agent.pk})
    assert (reply["status"], reply["detail"]) == (403, OPERATOR_MESSAGE)


async def test_an_operate_token_acts_with_the_apis_answers(sockets, operator, agent):
    secret = await database_sync_to_async(issue_token)(operator, scope="operate")
    socket = await connect(sockets, token=secret)

    reply = await ask(socket, {"type": "agent.pause", "agent": agent.pk, "reason": "lunch", "ref": 7})
    assert (reply["type"], reply["status"], reply["ref"]) == ("result", 200, 7)
    assert (reply["data"]["id"], reply["data"]["status"]) == (agent.pk, "paused")
    assert await agent_status(agent) == "paused"

    again = await ask(socket, {"type": "agent.pause", "agent": agent.pk})
    assert (again["status"], again["code"], again["detail"]) == (409, "conflict", "status: agent is already paused")
    bad = await ask(socket, {"type": "agent.resume", "agent": "first"})
    assert (bad["status"], bad["code"], bad["errors"]) == (400, "invalid", {"agent": "A valid integer is required."})
    missing = await ask(socket, {"type": "decision.answer", "decision": 999999, "option": "approve"})
    assert (missing["status"], missing["errors"]) == (404, {"decision": "not found"})
    resumed = await ask(socket, {"type": "agent.resume", "agent": agent.pk})
    assert resumed["data"]["status"] == "idle"


async def test_a_token_revoked_after_connecting_acts_no_more(sockets, operator, agent):
    secret = await database_sync_to_async(issue_token)(operator, scope="operate")
    socket = await connect(sockets, token=secret)
    token = await database_sync_to_async(ApiToken.objects.get)()
    await database_sync_to_async(token_revoke)(token=token)

    reply = await ask(socket, {"type": "agent.pause", "agent": agent.pk})
    assert (reply["status"], reply["code"]) == (401, "not_authenticated")
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await agent_status(agent) == "idle"


async def test_an_expired_token_cannot_connect(operator):
    secret = await database_sync_to_async(issue_token)(operator)
    await database_sync_to_async(ApiToken.objects.update)(expiry=timezone.now() - timedelta(seconds=1))
    socket = communicator(GLOBAL, token=secret)
    connected, _ = await socket.connect()
    try:
        assert connected
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    finally:
        await socket.disconnect()


async def test_a_session_socket_acts_until_sign_out(sockets, operator, agent):
    client = Client()
    await database_sync_to_async(client.force_login)(operator)
    key = client.cookies["sessionid"].value
    socket = await connect(sockets, token=None, headers=[(b"cookie", f"sessionid={key}".encode())])

    assert (await ask(socket, {"type": "agent.pause", "agent": agent.pk}))["status"] == 200
    await database_sync_to_async(client.post)("/accounts/logout/")
    assert not await database_sync_to_async(StoredSession.objects.filter(session_key=key).exists)()
    reply = await ask(socket, {"type": "agent.resume", "agent": agent.pk})
    assert reply["status"] == 401
    assert await agent_status(agent) == "paused"
