"""Shared fixtures. The suite runs on PostgreSQL when DATABASE_URL points at it (CI), else on SQLite."""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User

from coordination.access.services import token_issue
from coordination.permissions import OPERATORS_GROUP, is_operator
from coordination.services import MemberSpec, team_spawn


def scripted(role: str, **config) -> MemberSpec:
    return MemberSpec(role=role, runtime="scripted", runtime_config={"duration_s": 0, **config})


def issue_token(user, *, scope: str | None = None, name: str = "test token", lifetime=None) -> str:
    """A new API token's secret: scope operate for operators, read otherwise, unless given."""
    scope = scope or ("operate" if is_operator(user) else "read")
    return token_issue(user=user, name=name, scope=scope, lifetime=lifetime)[1]


@pytest.fixture(autouse=True)
def own_rate_limit_counters(settings):
    """Each test counts API requests from zero, on the configured backend (Redis with REDIS_URL)."""
    settings.CACHES = {**settings.CACHES, "throttle": {**settings.CACHES["throttle"], "KEY_PREFIX": uuid.uuid4().hex}}


@pytest.fixture(scope="session", autouse=True)
def workspace_roots(tmp_path_factory):
    """Tests' workspaces live under pytest's temporary directory: a workspace root here and in child processes."""
    base = str(tmp_path_factory.getbasetemp())
    roots = [*map(str, django_settings.HIVE["WORKSPACE_ROOTS"]), base]
    os.environ["HIVE_WORKSPACE_ROOTS"] = ",".join(roots)
    original = django_settings.HIVE["WORKSPACE_ROOTS"]
    django_settings.HIVE["WORKSPACE_ROOTS"] = [*original, tmp_path_factory.getbasetemp()]
    yield base
    django_settings.HIVE["WORKSPACE_ROOTS"] = original


@pytest.fixture
def workspace(tmp_path):
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def crew(db, workspace):
    """A session with one scripted, instant agent per role (two developers for pairing)."""
    members = [scripted(role) for role in ("product_manager", "architect", "developer", "reviewer", "tester", "devops")]
    members.append(scripted("developer", seed=1))
    return team_spawn(name="Test crew", goal="ship", workspace=str(workspace), members=members)


@pytest.fixture
def operator(db):
    user = User.objects.create_user("operator", password="operator-pass-123")
    user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    return user


@pytest.fixture
def viewer(db):
    return User.objects.create_user("viewer", password="viewer-pass-123")


def run_until_quiet(engine, *, max_ticks: int = 300, drain_timeout: float = 10) -> None:
    """Tick the engine until no work is claimed, applied or in flight."""
    quiet = 0
    for _ in range(max_ticks):
        report = engine.tick()
        engine.drain(timeout=drain_timeout)
        quiet = 0 if (report.busy or engine.in_flight) else quiet + 1
        if quiet >= 2:
            return
    raise AssertionError(f"engine still busy after {max_ticks} ticks")


@pytest.fixture
def engine(db):
    """An in-process coordinator whose housekeeping runs every tick."""
    from coordination.engine import Engine

    instance = Engine(concurrency=2, housekeeping_interval=0)
    yield instance
    instance.shutdown(grace=1)


@pytest.fixture
def drive(engine):
    return lambda: run_until_quiet(engine)


class PrivateRedis:
    """A redis-server of the test's own, on a free port, that the test may freeze (SIGSTOP) and thaw."""

    def __init__(self, tmp_path):
        import socket
        import subprocess
        import time

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def freeze(self) -> None:
        import signal

        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        import signal

        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    """A real Redis server owned by this test (skipped where redis-server is not installed)."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()
