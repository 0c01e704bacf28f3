"""HIVE_PRODUCTION=true: secure by default, `check --deploy` clean, and misconfiguration refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k7#Vq9!pX2@wL5$zR8^tN3&bM6*cJ4(hF1)dG0-sY7+eU2=aQ9"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "HIVE_PRODUCTION")}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", HIVE_PRODUCTION="true", SECRET_KEY=STRONG_KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


PRINT_SECURITY = (
    "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, "
    "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
)


def test_production_is_https_only_by_default_and_local_is_not():
    production = manage("shell", "-v", "0", "-c", PRINT_SECURITY, HIVE_PRODUCTION="true", SECRET_KEY=STRONG_KEY)
    assert production.stdout.split() == ["True", "True", "True", "True", "None"], production.stderr
    local = manage("shell", "-v", "0", "-c", PRINT_SECURITY)
    assert local.stdout.split() == ["False", "False", "False", "False", "None"], local.stderr


def test_a_tls_terminating_proxy_is_named_by_its_header():
    result = manage(
        "shell", "-v", "0", "-c", PRINT_SECURITY,
        HIVE_PRODUCTION="true", SECRET_KEY=STRONG_KEY, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )  # fmt: skip
    assert result.stdout.strip().endswith("('HTTP_X_FORWARDED_PROTO', 'https')"), result.stderr


@pytest.mark.parametrize(
    "env, reason",
    [
        ({"HIVE_PRODUCTION": "true"}, "SECRET_KEY is not set"),
        ({"HIVE_PRODUCTION": "true", "SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"HIVE_PRODUCTION": "true", "DEBUG": "true"}, "DEBUG=true with HIVE_PRODUCTION=true"),
        ({"HIVE_PRODUCTION": "true", "DEBUG": "true", "SECRET_KEY": STRONG_KEY}, "DEBUG=true with HIVE_PRODUCTION"),
    ],
)
def test_misconfigured_production_is_refused_in_one_line(env, reason):
    result = manage("check", **env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Agent Hive cannot start:") and reason in lines[0], result.stderr


def test_plain_http_is_redirected_except_the_health_probes(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    redirect = client.get("/api/coordination/status")
    assert redirect.status_code == 301 and redirect["Location"].startswith("https://")
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/api/coordination/status", headers={"X-Forwarded-Proto": "https"}).status_code == 401
