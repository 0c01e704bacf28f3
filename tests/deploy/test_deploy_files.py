"""deploy/: the compose file, the Dockerfile and the systemd units run real entry points with documented settings."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.urls import resolve

from tests.deploy.entry_points import ROOT, check_command, documented_variables, env_file_variables

DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
APP_SERVICES = ("migrate", "web-1", "web-2", "coordinator-1", "coordinator-2")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_runs_the_whole_system(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    ran = {name: check_command(services[name]["command"]) for name in APP_SERVICES}
    assert ran == {
        "migrate": "manage.py migrate",
        "web-1": "daphne",
        "web-2": "daphne",
        "coordinator-1": "manage.py run_coordinator",
        "coordinator-2": "manage.py run_coordinator",
    }
    # Two daemons must not share a name (their heartbeats and leases are told apart by it).
    names = [services[name]["command"][-1] for name in ("coordinator-1", "coordinator-2")]
    assert len(set(names)) == 2


def test_compose_restart_policies_health_checks_and_order(compose):
    services = compose["services"]
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "web-1", "web-2", "coordinator-1", "coordinator-2"):
        assert services[name]["restart"] == "unless-stopped", name
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", name
        if test[1] == "python":
            code = test[test.index("-c") + 1]
            compile(code, name, "exec")
            for url_path in re.findall(r"http://127\.0\.0\.1:8000(/[a-z]*)", code):
                resolve(url_path)
            if "coordinator" in name:
                assert f"name='{name}'" in code and check_command(test[1:4]) == "manage.py shell"
    for name in ("web-1", "web-2", "coordinator-1", "coordinator-2"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_compose_settings_are_documented(compose):
    documented = documented_variables()
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == "hive.env"
        assert set(service["environment"]) <= documented, name
        assert service["environment"]["HIVE_PRODUCTION"] == "true"
    assert env_file_variables(DEPLOY / "hive.env.example") <= documented


def test_dockerfile_is_slim_unprivileged_with_static_files_and_a_health_check(compose):
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    assert instructions[0] == "FROM python:3.11-slim"
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "manage.py collectstatic --noinput" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    cmd = next(line for line in instructions if line.startswith("CMD "))
    argv = yaml.safe_load(cmd[4:])
    assert check_command(argv) == "daphne"
    assert argv == compose["services"]["web-1"]["command"]


def unit_exec_starts(unit: Path) -> list[list[str]]:
    lines = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    return [shlex.split(line.removeprefix("ExecStart=")) for line in lines]


def test_systemd_units_run_real_entry_points_with_the_env_file_template():
    web = unit_exec_starts(UNITS / "agent-hive-web@.service")
    coordinator = unit_exec_starts(UNITS / "agent-hive-coordinator@.service")
    migrate = unit_exec_starts(UNITS / "agent-hive-migrate.service")
    assert [check_command([arg.replace("%i", "8001") for arg in argv]) for argv in web] == ["daphne"]
    assert [check_command([arg.replace("%H", "host").replace("%i", "1") for arg in argv]) for argv in coordinator] == [
        "manage.py run_coordinator"
    ]
    assert [check_command(argv) for argv in migrate] == ["manage.py migrate", "manage.py collectstatic"]
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        assert "EnvironmentFile=/etc/agent-hive/hive.env" in text, unit.name
        assert "User=agent-hive" in text, unit.name
    assert "HIVE_PRODUCTION=true" in (DEPLOY / "hive.env.example").read_text()


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("HIVE_REQUIRE_SYSTEMD_ANALYZE"):
            pytest.fail("systemd-analyze is not installed (Debian: apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed")
    # verify checks that each ExecStart binary exists: point them at this interpreter.
    names = {"agent-hive-web@.service": "agent-hive-web@8001.service",
             "agent-hive-coordinator@.service": "agent-hive-coordinator@1.service",
             "agent-hive-migrate.service": "agent-hive-migrate.service"}  # fmt: skip
    for source, instance in names.items():
        text = (UNITS / source).read_text().replace("/opt/agent-hive/.venv/bin/python", sys.executable)
        (tmp_path / instance).write_text(text)
        if source != instance:
            (tmp_path / source).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *names.values()], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), (
        result.stdout + result.stderr
    )
