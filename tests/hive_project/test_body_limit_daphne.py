"""Under daphne, a 50 MB request body is answered 413 and costs the process far less than 50 MB."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BODY = 50 * 1024 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def post(port: int, *, chunked: bool) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    piece = b"a" * (1024 * 1024)
    connection.putrequest("POST", "/api/tasks")
    connection.putheader("Content-Type", "application/json")
    if chunked:
        connection.putheader("Transfer-Encoding", "chunked")
    else:
        connection.putheader("Content-Length", str(BODY))
    connection.endheaders()
    try:
        for _ in range(BODY // len(piece)):
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the whole body is sent
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_an_oversized_body_is_not_held_in_memory(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "HIVE_MAX_BODY_BYTES": "1000000"}
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hive_project.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        before = rss_kib(server.pid)
        for chunked in (False, True):
            status, body = post(port, chunked=chunked)
            assert status == 413 and body["code"] == "too_large" and "body" in body["errors"], body
        grown_mib = (rss_kib(server.pid) - before) / 1024
        assert grown_mib < 20, f"daphne grew by {grown_mib:.0f} MiB for two 50 MiB bodies"
    finally:
        server.kill()
        server.wait(timeout=10)
