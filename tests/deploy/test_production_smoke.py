"""Production smoke test: the systemd units' exact commands with HIVE_PRODUCTION=true on PostgreSQL and Redis.

migrate, two daphne web processes and two coordinator daemons run as real processes on a
database of their own. Work arrives through both web processes; one web process and one daemon
are killed with SIGKILL; every workflow still completes exactly once, and every event reaches a
socket on the surviving web process.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connections
from websockets.sync.client import connect as ws_connect

from tests.deploy.entry_points import ROOT, check_command

pytestmark = pytest.mark.slow

UNITS = ROOT / "deploy" / "systemd"
INSTALLED_PYTHON = "/opt/agent-hive/.venv/bin/python"
WORKFLOWS_PER_WEB = 4
DEADLINE_S = 180


def unit_commands(unit: str, **instance: str) -> list[list[str]]:
    """The unit's ExecStart lines as argv lists, for this checkout: its interpreter, %i and %H filled in."""
    commands = []
    for line in (UNITS / unit).read_text().splitlines():
        if line.startswith("ExecStart="):
            argv = shlex.split(line.removeprefix("ExecStart="))
            argv = [sys.executable if arg == INSTALLED_PYTHON else arg for arg in argv]
            argv = [arg.replace("%i", instance.get("i", "")).replace("%H", "smoke") for arg in argv]
            check_command(argv)
            commands.append(argv)
    assert "WorkingDirectory=/opt/agent-hive" in (UNITS / unit).read_text()
    return commands


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smoke_database():
    """A PostgreSQL database of the test's own on the server the suite uses (skipped on SQLite)."""
    settings_dict = connections["default"].settings_dict
    if connections["default"].vendor != "postgresql":
        pytest.skip("the production smoke test runs on PostgreSQL (set DATABASE_URL)")
    host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or "5432"
    user, password = settings_dict.get("USER") or "postgres", settings_dict.get("PASSWORD") or ""
    name = f"hive_smoke_{uuid.uuid4().hex[:10]}"
    admin_dsn = f"host={host} port={port} user={user} dbname=postgres" + (f" password={password}" if password else "")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    auth = user + (f":{password}" if password else "")
    yield f"postgres://{auth}@{host}:{port}/{name}", admin_dsn.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Deployment:
    def __init__(self, tmp_path: Path, env: dict[str, str]):
        self.tmp_path, self.env, self.processes = tmp_path, env, {}

    def run(self, argv: list[str], **extra_env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            argv, cwd=ROOT, env={**self.env, **extra_env}, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.tmp_path / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()


class Api:
    """HTTP as a TLS-terminating proxy would forward it (X-Forwarded-For and X-Forwarded-Proto: https)."""

    def __init__(self, port: int, token: str):
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {
            "Authorization": f"Token {self.token}",
            "X-Forwarded-For": "198.51.100.7",  # daphne reads the scheme only with the client's address
            "X-Forwarded-Proto": "https",
            "Content-Type": "application/json",
        }
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class SocketRecorder(threading.Thread):
    """A token-authenticated socket without Origin (a non-browser client), recording every event id it gets."""

    def __init__(self, port: int, token: str):
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{port}/ws/coordination/?after=0"
        self.token, self.ids, self.stop, self.error = token, set(), threading.Event(), None
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with ws_connect(self.url, additional_headers={"Authorization": f"Token {self.token}"}) as sock:
                self.connected.set()
                while not self.stop.is_set():
                    try:
                        message = json.loads(sock.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if isinstance(message.get("id"), int):
                        self.ids.add(message["id"])
        except Exception as exc:  # reported by the test
            self.error = exc
            self.connected.set()


def test_production_units_survive_a_killed_web_process_and_daemon(smoke_database, private_redis, tmp_path):
    database_url, dsn = smoke_database
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "HIVE_PRODUCTION": "true",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": private_redis.url,
        "STATIC_ROOT": str(tmp_path / "static"),
        "HIVE_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
        "HIVE_WORKSPACE_ROOTS": str(tmp_path / "workspaces"),
        "HIVE_CREDENTIALS_FILE": str(tmp_path / "credentials.txt"),
        "HIVE_OPERATOR_PASSWORD": "smoke-operator-pass-123",
        # A dead daemon's work comes back within seconds instead of the default 30.
        "HIVE_LEASE_SECONDS": "5",
        "HIVE_HEARTBEAT_TIMEOUT": "5",
        "HIVE_API_RATE_TOKEN": "off",
        "HIVE_API_RATE_USER": "off",
    }
    deployment = Deployment(tmp_path, env)
    for argv in unit_commands("agent-hive-migrate.service"):
        deployment.run(argv)
    web_ports = {"web-1": free_port(), "web-2": free_port()}
    try:
        for name, port in web_ports.items():
            (argv,) = unit_commands("agent-hive-web@.service", i=str(port))
            deployment.start(name, argv)
        for number in ("1", "2"):
            (argv,) = unit_commands("agent-hive-coordinator@.service", i=number)
            deployment.start(f"coordinator-{number}", argv)
        for port in web_ports.values():  # probes answer over plain HTTP despite the HTTPS redirect
            wait_until(lambda port=port: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=60, what="readiness")

        deployment.run([sys.executable, "manage.py", "ensure_operator"])
        token = deployment.run([sys.executable, "manage.py", "issue_token", "operator"]).stdout.split()[-1]
        web1, web2 = Api(web_ports["web-1"], token), Api(web_ports["web-2"], token)
        assert web1.call("GET", "/api/coordination/status")[0] == 200

        recorder = SocketRecorder(web_ports["web-2"], token)
        recorder.start()
        assert recorder.connected.wait(20) and recorder.error is None, recorder.error

        scripted = {"runtime": "scripted", "runtime_config": {"duration_s": 0.5}}
        team = {"name": "Smoke crew", "members": [{"role": "developer", **scripted}, {"role": "reviewer", **scripted}]}
        status, body = web1.call("POST", "/api/coordination/spawn", team)
        assert status == 201, body
        session = body["session"]["id"]

        submitted = []
        for index in range(WORKFLOWS_PER_WEB):
            for api in (web1, web2):
                work = {"session": session, "title": f"Smoke work {len(submitted)}", "pattern": "code_review_cycle"}
                status, body = api.call("POST", "/api/tasks", work)
                assert status == 201, body
                submitted.append(body)
            if index == 1:
                deployment.kill("web-1")
                deployment.kill("coordinator-1")
                web1 = web2  # the proxy would send the rest to the surviving process

        def all_finished():
            with psycopg.connect(dsn) as conn:
                query = "SELECT status FROM coordination_workflow WHERE session_id = %s"
                rows = conn.execute(query, [session]).fetchall()
            finished = all(status in ("completed", "failed") for (status,) in rows)
            return len(rows) == len(submitted) and finished and rows

        rows = wait_until(all_finished, timeout=DEADLINE_S, what="every workflow to finish", interval=1)
        assert {status for (status,) in rows} == {"completed"}

        with psycopg.connect(dsn) as conn:
            completions = conn.execute(
                "SELECT w.id, count(e.id) FROM coordination_workflow w LEFT JOIN coordination_coordinationevent e"
                " ON e.workflow_id = w.id AND e.type = 'collaboration_completed' WHERE w.session_id = %s GROUP BY w.id",
                [session],
            ).fetchall()
            twice = conn.execute(
                "SELECT task_id FROM coordination_taskattempt WHERE status = 'succeeded'"
                " GROUP BY task_id HAVING count(*) > 1"
            ).fetchall()
            task_completed_twice = conn.execute(
                "SELECT task_id FROM coordination_coordinationevent WHERE type = 'task_completed'"
                " GROUP BY task_id HAVING count(*) > 1"
            ).fetchall()
            event_ids = {row[0] for row in conn.execute("SELECT id FROM coordination_coordinationevent").fetchall()}
        assert [count for _, count in completions] == [1] * len(submitted)
        assert twice == [] and task_completed_twice == []

        wait_until(lambda: event_ids <= recorder.ids, timeout=30, what="every event on the surviving web's socket")
        recorder.stop.set()
        recorder.join(timeout=5)
        assert recorder.error is None, recorder.error
        for name in ("web-2", "coordinator-2"):
            assert deployment.processes[name].poll() is None, deployment.log(name)[-3000:]
            assert "Traceback" not in deployment.log(name), deployment.log(name)[-3000:]
    finally:
        deployment.stop_all()
