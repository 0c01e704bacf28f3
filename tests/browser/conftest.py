"""A real ASGI server (daphne, HTTP + WebSockets) on the test database, and Debian's headless Chromium.

The server is a subprocess, so it sees only committed rows: browser tests use
`transactional_db`. On SQLite the test database must be a file both processes
open; it is chosen here before the database is created. Browsers are never
downloaded: CHROMIUM_PATH (default /usr/bin/chromium) must exist, else the tests skip.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connections

BASE_DIR = Path(__file__).resolve().parents[2]
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

_SQLITE_DIR = None
if connections["default"].vendor == "sqlite" and not connections["default"].settings_dict["TEST"].get("NAME"):
    # An in-memory test database cannot be shared with the server process: use a file.
    _SQLITE_DIR = tempfile.mkdtemp(prefix="hive-browser-db-")
    # pytest-django removes the database file at the end; the directory goes at exit.
    atexit.register(shutil.rmtree, _SQLITE_DIR, ignore_errors=True)
    _path = str(Path(_SQLITE_DIR) / "test.sqlite3")
    connections["default"].settings_dict["TEST"]["NAME"] = _path
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = _path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_env() -> dict[str, str]:
    conn = connections["default"]
    data = conn.settings_dict
    if conn.vendor == "sqlite":
        return {"SQLITE_PATH": data["NAME"], "DATABASE_URL": f"sqlite:///{data['NAME']}"}
    auth = quote(data["USER"] or "", safe="")
    if data.get("PASSWORD"):
        auth += ":" + quote(data["PASSWORD"], safe="")
    host = data.get("HOST") or "127.0.0.1"
    port = data.get("PORT") or "5432"
    return {"DATABASE_URL": f"postgres://{auth}@{host}:{port}/{data['NAME']}"}


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"daphne did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM_PATH).exists() or shutil.which(CHROMIUM_PATH)):
        pytest.skip(f"no Chromium at {CHROMIUM_PATH} (set CHROMIUM_PATH; browsers are never downloaded)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright for Python is not installed")
    return CHROMIUM_PATH


@pytest.fixture(scope="session")
def server_url(chromium_path, django_db_setup, django_db_blocker, tmp_path_factory):
    """daphne serving hive_project.asgi on a free port, against the test database."""
    workdir = tmp_path_factory.mktemp("browser-server")
    env = {
        **os.environ,
        **_database_env(),
        "DJANGO_SETTINGS_MODULE": "hive_project.settings",
        "STATIC_ROOT": str(workdir / "static"),
        "HIVE_WORKSPACE_ROOT": str(workdir / "workspaces"),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server must keep Django's async safety checks
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=120,
    )
    port = _free_port()
    log = workdir / "daphne.log"
    daphne = Path(sys.executable).with_name("daphne")
    command = [str(daphne)] if daphne.exists() else [sys.executable, "-m", "daphne"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "-b", "127.0.0.1", "-p", str(port), "hive_project.asgi:application"],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Chromium for one test module. Playwright's sync API runs an event loop in this thread until it
    stops, so it must stop before later modules' asyncio tests; meanwhile the ORM calls between its
    calls are safe, which DJANGO_ALLOW_ASYNC_UNSAFE tells Django."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser, server_url):
    """Open a page in a fresh browser context, signed in as `user` if given (session cookie)."""
    from django.test import Client

    contexts = []

    def open_page(user=None, *, viewport=None):
        context = browser.new_context(
            base_url=server_url, viewport=viewport or {"width": 1280, "height": 900}, service_workers="allow"
        )
        context.set_default_timeout(15_000)
        if user is not None:
            client = Client()
            client.force_login(user)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME]
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": server_url, "httpOnly": True}]
            )
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
