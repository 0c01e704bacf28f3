"""The ASGI application serves Django's HTTP stack through the one-hop bridge."""

from __future__ import annotations

import json

import pytest
from channels.testing import HttpCommunicator

from coordination.models import Workflow
from hive_project.asgi import application
from hive_project.http_bridge import environ
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def close_bridge_threads():
    """The bridge's worker threads keep database connections; end them so the test database can be dropped."""
    yield
    application.application_mapping["http"].close()


async def call(method: str, path: str, *, body: bytes = b"", headers: list | None = None) -> dict:
    communicator = HttpCommunicator(application, method, path, body=body, headers=headers or [])
    return await communicator.get_response(timeout=10)


async def test_liveness_over_asgi():
    response = await call("GET", "/healthz")
    assert response["status"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}
    assert (b"content-type", b"application/json") in response["headers"]


async def test_anonymous_api_read_is_refused():
    response = await call("GET", "/api/coordination/status")
    assert response["status"] == 401


def test_token_post_with_a_json_body_and_query_string_reaches_the_view(crew, operator):
    from asgiref.sync import async_to_sync

    token = issue_token(operator)
    body = json.dumps({"session": crew.pk, "title": "Bridge work", "pattern": "code_review_cycle"}).encode()
    headers = [
        (b"authorization", f"Token {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"host", b"testserver"),
    ]
    response = async_to_sync(call)("POST", "/api/tasks", body=body, headers=headers)
    assert response["status"] == 201, response["body"][:500]
    assert Workflow.objects.filter(title="Bridge work", session=crew).exists()

    listing = async_to_sync(call)(
        "GET", "/api/tasks", headers=[(b"authorization", f"Token {token}".encode()), (b"host", b"testserver")]
    )
    assert listing["status"] == 200
    assert "Bridge work" in listing["body"].decode()


def test_environ_maps_scope_to_wsgi():
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/ü",
        "query_string": b"window=24h",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.2", 5555),
        "headers": [(b"content-type", b"text/plain"), (b"x-tag", b"a"), (b"x-tag", b"b")],
    }
    env = environ(scope, b"hello")
    assert env["PATH_INFO"] == "/api/ü".encode().decode("latin1")
    assert env["QUERY_STRING"] == "window=24h"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["HTTP_X_TAG"] == "a,b"
    assert env["REMOTE_ADDR"] == "127.0.0.2"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert env["wsgi.input"].read() == b"hello"


class BodyFeed:
    """An ASGI `receive` handing out a large body in chunks, counting what was read."""

    def __init__(self, *, chunk: int, chunks: int):
        self.chunk, self.left, self.read = b"x" * chunk, chunks, 0

    async def __call__(self):
        if self.left == 0:
            return {"type": "http.disconnect"}
        self.left -= 1
        self.read += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": self.left > 0}


async def bridge_call(scope_headers: list, feed: BodyFeed) -> tuple[int, dict]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/tasks", "headers": scope_headers, "query_string": b""}
    await application.application_mapping["http"](scope, feed, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


async def test_a_declared_length_over_the_limit_is_413_before_reading_the_body(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    feed = BodyFeed(chunk=65536, chunks=800)  # 50 MiB
    status, body = await bridge_call([(b"content-length", str(65536 * 800).encode())], feed)
    assert status == 413
    assert body["code"] == "too_large" and set(body) == {"detail", "code", "errors"} and "body" in body["errors"]
    assert feed.read == 0


async def test_a_streamed_body_is_read_no_further_than_the_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    feed = BodyFeed(chunk=65536, chunks=800)  # 50 MiB, no Content-Length (chunked)
    status, body = await bridge_call([(b"content-type", b"application/json")], feed)
    assert status == 413 and body["code"] == "too_large"
    assert feed.read <= 1_000_000 + 65536
