"""The live feed on a real Redis: quiet when idle; a socket opening during a Redis hiccup is served, in one log line."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from hive_project.settings import redis_channel_layer
from tests.ws.conftest import communicator, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_layer(private_redis, settings):
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(private_redis.url)}
    return private_redis


def layer_trouble(caplog) -> list[str]:
    return [
        f"{record.levelname} {record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.WARNING and ("livefeed" in record.name or record.name.startswith("daphne"))
    ]


@pytest.mark.slow
async def test_an_idle_live_feed_stays_quiet(redis_layer, token, caplog):
    """Several of channels-redis' 5 s blocking receives pass without a timeout or a warning."""
    caplog.set_level(logging.INFO)
    socket, _ = await open_socket("/ws/coordination/", token=token)
    try:
        await asyncio.sleep(12)
    finally:
        await socket.disconnect()
    assert layer_trouble(caplog) == []
    assert not [r for r in caplog.records if "channel layer is back" in r.getMessage()]


async def test_a_socket_opening_while_redis_is_frozen_is_served_at_once_in_one_log_line(redis_layer, token, caplog):
    caplog.set_level(logging.INFO)
    redis_layer.freeze()
    try:
        started = time.monotonic()
        socket, hello = await open_socket("/ws/coordination/", token=token)
        elapsed = time.monotonic() - started
        await socket.disconnect()
    finally:
        redis_layer.thaw()
    assert hello["type"] == "hello"
    assert elapsed < 3, elapsed
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in problems] == ["WARNING"], [r.getMessage() for r in problems]
    assert "channel layer unavailable" in problems[0].getMessage()
    assert problems[0].exc_info is None  # one line, no traceback


async def test_a_refused_socket_never_waits_on_redis(redis_layer, token, caplog):
    """A socket from a foreign origin is refused without subscribing to the channel layer: no Redis
    connection, so no receive left waiting on Redis after the client has gone."""
    import redis

    watcher = redis.Redis.from_url(redis_layer.url)
    socket = communicator("/ws/coordination/", token=token, origin=(b"origin", b"http://evil.example"))
    connected, _ = await socket.connect(timeout=5)
    assert not connected
    await asyncio.sleep(0.5)
    others = [client for client in watcher.client_list() if client["cmd"] != "client|list"]
    await socket.send_input({"type": "websocket.disconnect", "code": 1006})  # the client goes away
    await asyncio.wait_for(asyncio.shield(socket.future), timeout=3)  # and the application ends with it
    watcher.close()
    assert others == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
