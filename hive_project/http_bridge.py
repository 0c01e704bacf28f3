"""Serve Django's synchronous HTTP stack to an ASGI server in one thread hop per request.

Every HTTP view in Agent Hive is synchronous. Django's own ASGI handler adapts
each middleware's request and response hooks separately, which costs dozens of
thread hand-offs per request; on two cores that tripled API latency under load.
Here the whole request (middleware, view, response) runs in one worker thread
through Django's WSGI handler, and the response is sent from the event loop.
Responses are buffered: the console and API send small, complete bodies.

Request bodies are capped at settings.DATA_UPLOAD_MAX_MEMORY_SIZE (HIVE_MAX_BODY_BYTES):
a declared Content-Length over it is answered 413 in the API's error shape without reading
the body, and a stream that grows past it is answered 413 as soon as it does; the bridge
never joins more than the limit into one buffer. Daphne itself would store the whole body
and queue all of it for the application; `cap_daphne_request_bodies` (installed by
hive_project.asgi) makes it drop whatever comes past the limit.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from coordination.api.errors import too_large_body


def body_limit() -> int | None:
    """Largest request body accepted, in bytes (None: no limit)."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def declared_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class SyncHTTPBridge:
    def __init__(self, *, threads: int = 8):
        self.handler = WSGIHandler()
        self.threads = threads
        # Each worker thread keeps its own database connection (CONN_MAX_AGE).
        self.executor = self._new_executor()

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="hive-http")

    def close(self) -> None:
        """End the worker threads (and so their database connections); later requests start new ones."""
        old, self.executor = self.executor, self._new_executor()
        old.shutdown(wait=True)
        gc.collect()  # connections of finished threads close when collected

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope type {scope['type']!r}")
        limit = body_limit()
        if limit is not None and (declared_length(scope) or 0) > limit:
            await self._refuse_too_large(send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if limit is not None and len(body) > limit:
                # Stop reading here: the server drops the rest with the connection.
                await self._refuse_too_large(send)
                return
            if not message.get("more_body"):
                break
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.executor, self._respond, scope, bytes(body))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    @staticmethod
    async def _refuse_too_large(send) -> None:
        content = json.dumps(too_large_body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _respond(self, scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: dict = {}

        def start_response(status, response_headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in response_headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = self.handler(environ(scope, body), start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # fires request_finished: connections are returned or closed
        return started["status"], started["headers"], b"".join(chunks)


def environ(scope, body: bytes) -> dict:
    """The WSGI environ (PEP 3333) for an ASGI HTTP scope."""
    script_name = scope.get("root_path", "").encode("utf8").decode("latin1")
    path_info = scope["path"].encode("utf8").decode("latin1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("localhost", 80)
    env = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        env["REMOTE_ADDR"] = scope["client"][0]
    for name, value in scope.get("headers", []):
        key = name.decode("latin1").upper().replace("-", "_")
        key = key if key in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{key}"
        text = value.decode("latin1")
        env[key] = f"{env[key]},{text}" if key in env else text
    return env


def cap_daphne_request_bodies(limit: int | None) -> None:
    """Make daphne keep at most `limit` + 1 bytes of any request body.

    Daphne (Twisted) stores the whole body before calling the application, then queues all
    of it for the application at once: a 50 MB request cost the process 50 MB however early
    the answer came. Past the limit the rest is read from the socket and dropped; the
    bridge then sees a body over the limit (or a Content-Length over it) and answers 413.
    """
    if limit is None:
        return
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # another ASGI server: the bridge's own cap still applies
        return
    if getattr(WebRequest, "hive_body_cap", None) is not None:
        WebRequest.hive_body_cap = limit
        return
    keep = WebRequest.handleContentChunk

    def handleContentChunk(self, data: bytes) -> None:  # Twisted's name
        kept = getattr(self, "hive_body_kept", 0)
        room = WebRequest.hive_body_cap + 1 - kept
        if room > 0:
            keep(self, data[:room])
        self.hive_body_kept = kept + min(len(data), max(room, 0))

    WebRequest.hive_body_cap = limit
    WebRequest.handleContentChunk = handleContentChunk
