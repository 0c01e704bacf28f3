"""A real daemon through a 5 s database outage: finished results are kept, then applied once; nothing runs twice.

The daemon reaches PostgreSQL through a TCP proxy the test cuts (every
connection dropped, new ones refused) and restores.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from coordination.models import CoordinationEvent, TaskAttempt, Workflow
from coordination.services import WorkSpec, team_spawn, work_submit

from .test_daemons import (
    Daemons,
    assert_agents_settled,
    assert_each_task_done_exactly_once,
    running_daemons,
    scripted,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the outage is cut between a daemon and PostgreSQL"),
]


class Proxy:
    """Forwards a local port to PostgreSQL until cut; while cut, drops every connection."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self.down = True
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_results_finished_during_a_5s_outage_are_applied_once(transactional_db, tmp_path):
    s = connection.settings_dict
    proxy = Proxy(s["HOST"] or "127.0.0.1", int(s["PORT"] or 5432))
    root = tmp_path / "root"
    session = team_spawn(
        name="Outage",
        workspace=str(root / "ws"),
        members=[scripted(f"dev-{i}", duration=1.5) for i in range(3)],
    )
    daemons = Daemons(tmp_path)
    try:
        from .test_daemons import database_url

        url = database_url().replace(f":{s['PORT'] or 5432}/", f":{proxy.port}/")
        daemons.start(
            "outlasting",
            "--concurrency",
            "3",
            env={
                "DATABASE_URL": url,
                "HIVE_WORKSPACE_ROOT": str(root),
                "HIVE_LEASE_SECONDS": "30",
                "HIVE_HEARTBEAT_TIMEOUT": "30",
            },
        )
        wait_for(running_daemons(1), timeout=60, what="the daemon to start", daemons=daemons)
        workflows = [
            work_submit(session=session, work=WorkSpec(title=f"Job {i}", pattern="conflict_resolution"))
            for i in range(6)
        ]
        wait_for(
            lambda: TaskAttempt.objects.filter(status="running").count() == 3,
            timeout=30,
            what="three tasks running",
            daemons=daemons,
        )
        proxy.cut()  # they finish in ~1.5 s, inside the outage
        spool = Path(root) / "var"
        time.sleep(5)
        kept = [p for p in spool.glob("results-*.jsonl")] if spool.exists() else []
        lines = sum(len(p.read_text().splitlines()) for p in kept)
        proxy.restore()
        assert lines == 3, f"the three finished results should be on disk during the outage\n{daemons.output()}"
        wait_for(
            lambda: Workflow.objects.filter(pk__in=[w.pk for w in workflows], status="completed").count() == 6,
            timeout=90,
            what="every workflow to complete after the outage",
            daemons=daemons,
        )
        assert_each_task_done_exactly_once()  # one attempt per task: nothing ran twice
        assert not CoordinationEvent.objects.filter(type__in=["task_reclaimed", "task_result_rejected"]).exists()
        assert not list(spool.glob("results-*.jsonl"))
        assert_agents_settled()
    finally:
        daemons.stop_all()
        proxy.close()
        # Let the server notice the cut connections before the test database is dropped.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and others_connected():
            time.sleep(0.2)


def others_connected() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]
