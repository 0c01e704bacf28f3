"""The demo set-up: a real repository from the template, a crew that really works on it, a feed of work."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from coordination.demo import DEMO_DIR, catalogue, demo_ensure, feed_next, team_config, workspace_create
from coordination.models import Session, Task, Workflow


def git_log(repo: Path) -> list[str]:
    out = subprocess.run(["git", "log", "--format=%an|%s"], cwd=repo, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_workspace_is_a_git_repository_made_from_the_template(tmp_path):
    repo = workspace_create(root=tmp_path)

    assert repo.parent == tmp_path and repo.name.startswith("demo-")
    for path in ("pyproject.toml", "shop/__init__.py", "shop/pricing.py", "shop/cli.py", "tests/test_pricing.py"):
        assert (repo / path).is_file(), path
    assert git_log(repo) == ["Agent Hive demo|Start the shop sample project"]
    clean = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert clean.stdout == ""
    # The sample project's own tests pass as shipped (run as the crew's tester runs them).
    env = {"PATH": os.environ["PATH"], "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=repo, env=env, check=False)
    assert tests.returncode == 0


def test_team_config_fills_in_interpreter_scripts_and_workspace(tmp_path):
    config = team_config(workspace=tmp_path, python="/opt/py/bin/python")

    assert config["workspace"] == str(tmp_path)
    text = json.dumps(config)
    assert "@" not in text.replace("agent-hive", "")
    roles = {m["role"]: m for m in config["members"]}
    assert roles["tester"]["runtime_config"]["argv"][:3] == ["/opt/py/bin/python", "-m", "pytest"]
    assert roles["developer"]["runtime_config"]["argv"][1] == f"{DEMO_DIR}/apply_patch.py"
    assert roles["reviewer"]["runtime_config"]["failure_outcome"] == "changes_requested"
    # Scripted stand-ins are labelled simulated; the real tools are not.
    simulated = {role for role, m in roles.items() if m["runtime_config"].get("simulated")}
    assert simulated == {"product_manager", "architect", "developer"}


def test_demo_command_creates_then_reuses_the_session(db, tmp_path, settings):
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOT": tmp_path / "ws"}
    out = tmp_path / "team.json"

    call_command("demo", config_out=str(out), verbosity=0)
    session = Session.objects.get()
    written = json.loads(out.read_text())
    assert written["workspace"] == session.workspace
    assert session.agents.count() == 6
    assert [w.pattern for w in Workflow.objects.order_by("id")] == ["feature_delivery", "code_review_cycle", "ci_cd"]

    call_command("demo", config_out=str(out), verbosity=0)
    assert Session.objects.count() == 1
    assert json.loads(out.read_text())["workspace"] == session.workspace


def test_demo_replaces_a_session_whose_repository_is_gone(db, tmp_path):
    first, _, _ = demo_ensure(root=tmp_path)
    subprocess.run(["rm", "-rf", first.workspace], check=True)

    second, config, created = demo_ensure(root=tmp_path)

    assert created and second.pk != first.pk
    first.refresh_from_db()
    assert first.status == Session.Status.FAILED
    assert (Path(config["workspace"]) / ".git").is_dir()


def test_feed_submits_only_when_nothing_runs_and_stops_after_the_catalogue(db, tmp_path):
    session, _, _ = demo_ensure(root=tmp_path)
    assert feed_next(session=session) is None  # the backlog is running
    now = timezone.now()
    Workflow.objects.filter(session=session).update(status=Workflow.Status.COMPLETED, completed_at=now)
    assert feed_next(session=session, idle_pause=5, now=now) is None  # resting after the last piece

    fed = feed_next(session=session, idle_pause=5, now=now + timedelta(seconds=6))

    items = catalogue()
    assert fed.title == items[3]["title"] and fed.status == Workflow.Status.RUNNING
    Workflow.objects.filter(pk=fed.pk).update(status=Workflow.Status.WAITING_HUMAN)
    assert len(items) == 4  # the backlog's three, then one more
    # waiting on a human does not hold the crew up, and the catalogue is done: nothing more is fed
    assert feed_next(session=session, idle_pause=0) is None
    assert Workflow.objects.filter(session=session).count() == len(items)


def test_operator_login_is_created_once_with_a_private_credentials_file(db, tmp_path, monkeypatch, capsys):
    path = tmp_path / "creds.txt"
    monkeypatch.setenv("HIVE_CREDENTIALS_FILE", str(path))
    monkeypatch.delenv("HIVE_OPERATOR_PASSWORD", raising=False)

    call_command("ensure_operator")
    first = capsys.readouterr().out
    call_command("ensure_operator")
    second = capsys.readouterr().out

    user = get_user_model().objects.get()
    password = dict(line.split("=", 1) for line in path.read_text().splitlines())["password"]
    assert user.is_superuser and user.groups.filter(name="operators").exists()
    assert user.check_password(password) and password in first
    assert path.stat().st_mode & 0o777 == 0o600
    assert "Operator login exists: operator" in second and password not in second


def test_operator_password_can_come_from_the_environment(db, tmp_path, monkeypatch):
    monkeypatch.setenv("HIVE_CREDENTIALS_FILE", str(tmp_path / "creds.txt"))
    monkeypatch.setenv("HIVE_OPERATOR_PASSWORD", "correct-horse-battery")

    call_command("ensure_operator", verbosity=0)

    assert get_user_model().objects.get(username="operator").check_password("correct-horse-battery")


def test_the_crew_really_works_on_the_repository(db, tmp_path, drive):
    """One engine run of the whole backlog: real pytest, pyflakes and zipapp; scripted patches and documents."""
    session, _, _ = demo_ensure(root=tmp_path)

    drive()

    assert set(Workflow.objects.filter(session=session).values_list("status", flat=True)) == {"completed"}
    repo = Path(session.workspace)
    feature = Task.objects.filter(workflow__title="Bulk discounts for large orders")
    steps = [(t.step, t.round, t.outcome) for t in feature.order_by("id")]
    assert ("review", 1, "changes_requested") in steps  # the lint caught round 1
    assert ("test", 1, "failure") in steps  # the tests caught round 2
    assert steps[-1] == ("ci", 1, "success")
    failing_test = feature.get(step="test", round=1)
    assert "failed, 4 passed" in failing_test.result["output"] and not failing_test.simulated
    assert "imported but unused" in feature.get(step="review", round=1).result["output"]
    assert all(t.simulated for t in feature.filter(role__in=["developer", "product_manager", "architect"]))
    assert (repo / "releases" / "CURRENT").is_file()
    release = repo / "releases" / (repo / "releases" / "CURRENT").read_text().strip()
    ran = subprocess.run([sys.executable, str(release), "apple:120:3"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "360"
    authors = {line.split("|")[0] for line in git_log(repo)}
    assert {"dev-grace", "pm-ada", "arch-linus"} <= authors
    assert (repo / "shop" / "discounts.py").read_text().count(">= minimum") == 1


@pytest.fixture
def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_pids(pgid: int) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.add(int(entry.name))
    return pids


@pytest.mark.slow
def test_start_script_runs_the_crew_until_a_workflow_completes_and_stops_cleanly(tmp_path, free_port):
    import sqlite3
    import time
    import urllib.request

    root = Path(__file__).resolve().parents[2]
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "SQLITE_PATH": str(tmp_path / "hive.sqlite3"),
        "HIVE_PORT": str(free_port),
        "HIVE_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
        "HIVE_CREDENTIALS_FILE": str(tmp_path / "credentials.txt"),
        "HIVE_LOG_DIR": str(tmp_path / "log"),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    env.pop("HIVE_OPERATOR_PASSWORD", None)
    log = open(tmp_path / "start.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        ["bash", str(root / "scripts" / "start.sh")],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    children: set[int] = set()
    try:
        completed = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            children |= group_pids(proc.pid)
            if (tmp_path / "hive.sqlite3").exists():
                try:
                    with sqlite3.connect(f"file:{tmp_path / 'hive.sqlite3'}?mode=ro", uri=True, timeout=5) as db:
                        completed = db.execute(
                            "SELECT title FROM coordination_workflow WHERE status = 'completed' AND pattern = ?",
                            ["feature_delivery"],
                        ).fetchall()
                except sqlite3.OperationalError:
                    completed = []  # not migrated yet
            if completed:
                break
            time.sleep(1)
        output = (tmp_path / "start.log").read_text()
        assert completed, f"no feature workflow completed; start.sh said:\n{output[-4000:]}"
        assert proc.poll() is None, output[-4000:]
        login = (tmp_path / "credentials.txt").read_text()
        assert "username=operator" in login and login.split("password=")[1].strip() in output
        base = f"http://127.0.0.1:{free_port}"
        assert urllib.request.urlopen(f"{base}/admin/login/", timeout=10).status == 200
        assert urllib.request.urlopen(f"{base}/static/admin/css/base.css", timeout=10).status == 200
        children |= group_pids(proc.pid)
        assert len(children) >= 4  # start.sh, the web server, the coordinator, the feed

        proc.send_signal(15)
        assert proc.wait(timeout=60) == 0
        assert "Stopped." in (tmp_path / "start.log").read_text()
        lingering = {pid for pid in children if Path(f"/proc/{pid}").exists() and pid in group_pids(proc.pid)}
        assert lingering == set(), "processes outlived start.sh"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # nothing should be left; never leak into other tests
        log.close()


def test_tools_the_demo_crew_runs_are_runtime_requirements():
    """start.sh installs requirements.txt only: every module the crew runs must be there."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    team = json.loads((root / "coordination/demo/team.json").read_text())
    modules = {m["runtime_config"]["argv"][2] for m in team["members"] if m["runtime_config"]["argv"][1:2] == ["-m"]}
    scripts = "\n".join(p.read_text() for p in (root / "coordination/demo").glob("*.py"))
    modules |= set(re.findall(r'"-m",\s*"([a-z_]+)"', scripts))
    modules -= {"zipapp", "venv", "pip"}  # the standard library and pip come with Python
    required = {
        re.split(r"[<>=\[ ]", line, maxsplit=1)[0].lower().replace("-", "_")
        for line in (root / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert modules, "the demo crew runs no Python module? the test lost its target"
    assert modules <= required, f"not in requirements.txt: {sorted(modules - required)}"
