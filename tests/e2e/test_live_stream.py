"""End to end: a real daphne and a real run_coordinator over PostgreSQL and Redis.

A crew works through a feature_delivery workflow while a token client watches the
socket; then the client drops, the crew delivers a second workflow, and the client
reconnects with `after=<last id seen>` and must be replayed exactly what it missed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from websockets.sync.client import connect

from coordination.models import CoordinationEvent, Workflow
from coordination.services import WorkSpec, work_submit
from tests.conftest import issue_token

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the end-to-end stream runs on PostgreSQL"),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the end-to-end stream needs REDIS_URL"),
]


def database_url() -> str:
    """The test database, exactly, so the subprocesses share it."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self.procs[name]

    def output(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def stack(transactional_db, tmp_path):
    """daphne + run_coordinator on the test database and the machine's Redis; stopped whatever happens."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HIVE_TEAM_CONFIG": "",
        "PYTHONUNBUFFERED": "1",
    }
    processes = Processes(tmp_path)
    try:
        daphne = processes.start(
            "daphne",
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hive_project.asgi:application"],
            env,
        )
        processes.start(
            "coordinator",
            [sys.executable, "manage.py", "run_coordinator", "--no-autospawn", "--interval", "0.1"],
            env,
        )
        deadline = time.monotonic() + WAIT
        while True:
            assert daphne.poll() is None, f"daphne exited early\n{processes.output()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"daphne did not listen on {port} in {WAIT} s\n{processes.output()}"
                time.sleep(0.2)
        yield port, processes
    finally:
        processes.stop()


def open_stream(port: int, token: str, after: int | None = None):
    query = "" if after is None else f"?after={after}"
    return connect(
        f"ws://127.0.0.1:{port}/ws/coordination/{query}",
        origin=f"http://127.0.0.1:{port}",
        additional_headers={"Authorization": f"Token {token}"},
        open_timeout=WAIT,
    )


def receive(ws, deadline: float, processes: Processes, waiting_for: str) -> dict:
    remaining = deadline - time.monotonic()
    assert remaining > 0, f"timed out after {WAIT} s waiting for {waiting_for}\n{processes.output()}"
    try:
        return json.loads(ws.recv(timeout=remaining))
    except TimeoutError:
        pytest.fail(f"timed out after {WAIT} s waiting for {waiting_for}\n{processes.output()}")


def wait_until(condition, what: str, processes: Processes) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {WAIT} s waiting for {what}\n{processes.output()}"
        time.sleep(0.1)


def test_workflow_events_stream_live_and_replay_after_reconnect(stack, crew, operator):
    port, processes = stack
    token = issue_token(operator)

    with open_stream(port, token) as ws:
        hello = receive(ws, time.monotonic() + WAIT, processes, "hello")
        assert hello["type"] == "hello" and hello["after"] is None

        first = work_submit(session=crew, work=WorkSpec(title="Live coupons", estimate_hours=4), user=operator)
        seen: list[dict] = []
        deadline = time.monotonic() + WAIT
        while not any(e.get("workflow") == first.pk and e["type"] == "collaboration_completed" for e in seen):
            message = receive(ws, deadline, processes, f"collaboration_completed of workflow {first.pk}")
            assert isinstance(message.get("id"), int), message
            seen.append(message)

    ids = [event["id"] for event in seen]
    assert ids == sorted(set(ids)), "events must arrive in id order, once each"
    stored = list(
        CoordinationEvent.objects.filter(id__gt=hello["last_event_id"], id__lte=ids[-1]).values_list("id", flat=True)
    )
    assert ids == stored, "the live stream skipped events that are in the table"
    types = [event["type"] for event in seen if event["workflow"] == first.pk]
    assert types[0] == "work_submitted" and types[-1] == "collaboration_completed"
    assert "task_assigned" in types and "task_completed" in types

    # Offline: the crew delivers another workflow nobody watches.
    last_seen = ids[-1]
    second = work_submit(session=crew, work=WorkSpec(title="Offline refunds", estimate_hours=2), user=operator)
    wait_until(
        lambda: Workflow.objects.get(pk=second.pk).status == Workflow.Status.COMPLETED,
        f"workflow {second.pk} to complete",
        processes,
    )
    missed = list(CoordinationEvent.objects.filter(id__gt=last_seen).order_by("id").values_list("id", "type"))
    assert "collaboration_completed" in {t for _, t in missed}, missed

    with open_stream(port, token, after=last_seen) as ws:
        deadline = time.monotonic() + WAIT
        hello = receive(ws, deadline, processes, "hello after reconnect")
        assert hello["type"] == "hello" and hello["after"] == last_seen
        assert hello["last_event_id"] >= missed[-1][0]
        replayed: list[dict] = []
        done = None
        # Replayed events, replay_done, then possibly live ones: read until the newest event is in.
        while done is None or not replayed or replayed[-1]["id"] < hello["last_event_id"]:
            message = receive(ws, deadline, processes, f"events up to {hello['last_event_id']}")
            if message.get("type") == "replay_done":
                done = message
                continue
            assert isinstance(message.get("id"), int), message
            replayed.append(message)

    assert done["count"] == len([e for e in replayed if e["id"] <= done["last_event_id"]])
    expected = list(
        CoordinationEvent.objects.filter(id__gt=last_seen, id__lte=hello["last_event_id"])
        .order_by("id")
        .values_list("id", "type")
    )
    assert [(event["id"], event["type"]) for event in replayed] == expected
    assert {event["workflow"] for event in replayed if event["type"] == "collaboration_completed"} == {second.pk}
