"""`manage.py validate_hive` as an operator runs it: real daemons, daphne, faults, a throwaway sandbox.

The command runs as a subprocess. Its record (the ValidationRun row and its events) goes to
the test database on PostgreSQL; on SQLite, whose test database lives in memory, to a
database file made for the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from metrics.models import ValidationRun
from metrics.validation.runner import database_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def record_env(tmp_path) -> dict[str, str]:
    """Environment whose DATABASE_URL is where the command records its run."""
    env = {**os.environ, "HIVE_WORKSPACE_ROOT": str(tmp_path / "workspaces"), "PYTHONUNBUFFERED": "1"}
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = database_url()
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'record.sqlite3'}"
        env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    return env


def validate(env: dict[str, str], *args: str, timeout: float = 300) -> tuple[int, dict, str]:
    done = subprocess.run(
        [sys.executable, "manage.py", "validate_hive", "--sandbox", "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        payload = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done.returncode, payload, done.stderr


def sandboxes() -> set[str]:
    return {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("hive-validate-*")}


def test_a_short_sandbox_run_with_kill_and_agent_faults_passes(record_env):
    before = sandboxes()
    code, report, stderr = validate(
        record_env,
        "--minutes", "0.75",
        "--faults", "kill,agent",
        "--lease-seconds", "4",
        "--heartbeat-timeout", "4",
        "--agent-timeout", "4",
        "--drain", "90",
    )  # fmt: skip
    figures = report["figures"]
    assert code == 0, (report["failed_checks"], stderr[-3000:])
    assert report["status"] == "passed" and report["failed_checks"] == []
    success = figures["coordination_success"]
    assert success["denominator"] >= 2 and success["ratio"] >= 0.95
    once = figures["exactly_once"]
    assert once["duplicate_completions"] == once["tasks_assigned_twice"] == once["tasks_lost"] == []
    assert once["repository"]["checked"] and once["repository"]["duplicated"] == []
    assert once["repository"]["tasks_with_commits"] >= 2  # the demo crew really committed
    [kill] = figures["reclaim"]
    assert kill["daemon"].startswith(f"validate-{report['validation']}-d")
    assert kill["reclaimed_s"] is not None or kill["in_flight"] == 0
    [agent] = [f for f in figures["faults"] if f["fault"] == "agent"]
    assert [hit["charge"] for hit in agent["hit"]] == ["fail", "hang"]
    assert all(hit["task_status"] == "completed" for hit in agent["hit"])  # retried and done all the same
    assert figures["events"]["completeness"] == 1.0 and figures["events"]["table"] > 50
    assert figures["handoff_latency"]["count"] > 0
    # Nothing is left behind: no sandbox directory, no process of the run.
    assert sandboxes() <= before
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"validate-{report['validation']}-d" not in ps
    if connection.vendor == "postgresql":
        run = ValidationRun.objects.get(pk=report["validation"])
        assert (run.status, run.sandbox, run.faults) == ("passed", True, ["kill", "agent"])
        assert run.figures["coordination_success"]["ratio"] == success["ratio"]
        assert run.figures and run.finished_at is not None


def test_a_crew_that_always_fails_reports_its_true_rate_and_exits_non_zero(record_env, tmp_path):
    team = tmp_path / "failing-team.json"
    member = {"runtime": "scripted", "runtime_config": {"duration_s": 0.1, "failure_rate": 1}}
    team.write_text(
        json.dumps(
            {
                "name": "Always failing",
                "workspace": str(tmp_path / "unused"),
                "members": [{"role": role, **member} for role in ("product_manager", "developer", "tester")],
                "backlog": [{"title": "Never works", "pattern": "code_review_cycle", "estimate_hours": 1}],
            }
        )
    )
    code, report, stderr = validate(
        record_env, "--team", str(team), "--minutes", "0.2", "--workflows", "2", "--daemons", "1", "--drain", "90"
    )
    assert code == 1, stderr[-3000:]
    success = report["figures"]["coordination_success"]
    assert (success["ratio"], success["delivered_unaided"], success["escalated"]) == (0.0, 0, 2)
    assert report["status"] == "failed" and "coordination_success" in report["failed_checks"]
    if connection.vendor == "postgresql":
        assert ValidationRun.objects.get(pk=report["validation"]).failed_checks == report["failed_checks"]


def test_bad_options_and_the_db_fault_on_sqlite_get_a_clear_message(record_env):
    done = subprocess.run(
        [sys.executable, "manage.py", "validate_hive", "--sandbox", "--faults", "db,flood"],
        cwd=ROOT, env=record_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown 'flood'" in done.stderr and "needs" not in done.stdout
    done = subprocess.run(
        [sys.executable, "manage.py", "validate_hive", "--sandbox", "--faults", "db"],
        cwd=ROOT, env=record_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "db fault cuts PostgreSQL connections" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the launched run records into the test database")
def test_an_operator_starts_a_sandbox_run_from_the_api(client, operator, monkeypatch):
    """POST answers at once; the run is a background process that records its verdict on the same row."""
    from tests.conftest import issue_token

    monkeypatch.setenv("DATABASE_URL", database_url())
    response = client.post(
        "/api/validation-runs",
        {"minutes": 0.2, "faults": [], "workflows": 1},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {issue_token(operator)}",
    )
    assert response.status_code == 202, response.content
    run = ValidationRun.objects.get(pk=response.json()["id"])
    assert run.status == "running" and run.started_by == operator and run.pid
    deadline = time.monotonic() + 240
    while run.status == "running" and time.monotonic() < deadline:
        time.sleep(1)
        run.refresh_from_db()
    assert run.status in ("passed", "failed"), (run.status, run.error)
    assert run.figures["coordination_success"]["denominator"] >= 1
    assert run.sandbox and run.command.startswith("manage.py validate_hive --sandbox --record")
