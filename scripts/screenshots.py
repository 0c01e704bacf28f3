#!/usr/bin/env python
"""Seed a realistic demo state and capture the console's main pages into docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Runs on a throwaway SQLite database in a temporary directory (never your data): a
scripted (simulated) crew works through several collaboration patterns under a real
coordinator engine, some deploys wait for approval, and the engine keeps running while
the pages are captured so work is in flight. The console is served by daphne on a free
local port and photographed with Debian's Chromium (CHROMIUM_PATH, default
/usr/bin/chromium); no browser is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
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
PASSWORD = "demo-operator-pass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_django(workdir: Path) -> dict[str, str]:
    env = {
        "SQLITE_PATH": str(workdir / "demo.sqlite3"),
        "STATIC_ROOT": str(workdir / "static"),
        "HIVE_WORKSPACE_ROOT": str(workdir / "workspaces"),
        "DJANGO_SETTINGS_MODULE": "hive_project.settings",
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
    }
    for key in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    os.environ.update(env)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    return env


def member(role: str, seed: int, **extra):
    from coordination.services import MemberSpec

    config = {
        "seed": seed,
        "duration_s": [0.6, 2.4],
        "tokens": [900, 5200],
        "cost_per_1k_tokens": "0.012",
        **extra,
    }
    capabilities = {
        "product_manager": ["specs", "acceptance criteria"],
        "architect": ["system design", "conflict resolution"],
        "developer": ["python", "django", "pair programming"],
        "reviewer": ["code review", "security"],
        "tester": ["pytest", "playwright"],
        "devops": ["ci", "deploy"],
    }[role]
    return MemberSpec(role=role, runtime="scripted", runtime_config=config, capabilities=capabilities)


def seed() -> dict:
    from django.contrib.auth.models import Group, User
    from waffle.testutils import override_switch

    from coordination.engine import Engine
    from coordination.models import Decision
    from coordination.permissions import OPERATORS_GROUP
    from coordination.services import WorkSpec, decision_answer, team_spawn, work_submit

    operator = User.objects.create_user("operator", password=PASSWORD, is_staff=True)
    operator.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    User.objects.create_user("viewer", password=PASSWORD)

    crew = team_spawn(
        name="Checkout revamp",
        goal="Make checkout one click, with coupons and a faster cart.",
        members=[
            member("product_manager", 1),
            member("architect", 2),
            member("developer", 3),
            member("developer", 4),
            member("reviewer", 5, script={"review": ["changes_requested", "success"]}),
            member("tester", 6, failure_rate=0.15),
            member("devops", 7),
        ],
        user=operator,
    )
    engine = Engine(concurrency=4, housekeeping_interval=0.5)
    work = [
        WorkSpec(title="Coupon codes at checkout", pattern="feature_delivery", estimate_hours=16, priority=5),
        WorkSpec(title="Cart totals rounding", pattern="pair_programming", estimate_hours=6),
        WorkSpec(title="Harden payment webhook", pattern="code_review_cycle", estimate_hours=4),
        WorkSpec(title="Split the order service", pattern="task_handoff", estimate_hours=5),
        WorkSpec(title="Address autocomplete", pattern="feature_delivery", estimate_hours=12),
    ]
    for spec in work:
        work_submit(session=crew, work=spec, user=operator)
    _run_for(engine, seconds=40)
    with override_switch("require_deploy_approval", active=True):
        for spec in [
            WorkSpec(title="Release 2.4 to production", pattern="ci_cd", estimate_hours=3),
            WorkSpec(title="One-click checkout", pattern="feature_delivery", estimate_hours=20, priority=8),
        ]:
            work_submit(session=crew, work=spec, user=operator)
        _run_for(engine, seconds=40)
    first = Decision.objects.filter(status=Decision.Status.OPEN).order_by("id").first()
    if first is not None:
        decision_answer(decision=first, option=first.option_keys[0], user=operator, comment="Looks good, ship it")
    # keep work in flight while the pages are captured
    for spec in [
        WorkSpec(title="Saved payment methods", pattern="feature_delivery", estimate_hours=14),
        WorkSpec(title="Gift card balance", pattern="pair_programming", estimate_hours=6),
    ]:
        work_submit(session=crew, work=spec, user=operator)
    return {"session": crew.pk, "engine": engine}


def _run_for(engine, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    quiet = 0
    while time.monotonic() < deadline:
        report = engine.tick()
        quiet = 0 if (report.busy or engine.in_flight) else quiet + 1
        if quiet >= 3:
            return
        engine.wake.wait(0.2)
        engine.wake.clear()


def start_server(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(workdir / "daphne.log", "wb")  # noqa: SIM115 - lives as long as the server
    daphne = Path(sys.executable).with_name("daphne")
    proc = subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), "hive_project.asgi:application"],
        cwd=BASE_DIR,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(url + "/accounts/login/", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"daphne did not start; see {workdir / 'daphne.log'}")


def capture(url: str, out: Path, session_id: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from agents.models import Agent

    developer = Agent.objects.filter(session_id=session_id, role="developer").order_by("id").first()
    shots: list[Path] = []
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise SystemExit(f"no Chromium at {chromium}; set CHROMIUM_PATH")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)

        def signed_in(viewport):
            context = browser.new_context(base_url=url, viewport=viewport, device_scale_factor=1)
            page = context.new_page()
            page.goto("/accounts/login/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#main h1")
            return context, page

        def shoot(page, name: str, path: str, *, full_page: bool = True, before=None) -> None:
            page.goto(path)
            page.wait_for_selector("#main h1")
            if page.query_selector("[data-conn]"):
                page.wait_for_selector('[data-conn]:not([data-state="connecting"])', timeout=10_000)
            if before:
                before(page)
            page.wait_for_timeout(600)  # let charts and countdowns draw
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=full_page)
            shots.append(target)

        context, page = signed_in({"width": 1440, "height": 900})
        page.goto("/")
        page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10_000)
        paint = page.evaluate(
            "() => { const p = performance.getEntriesByName('first-contentful-paint')[0];"
            " const n = performance.getEntriesByType('navigation')[0];"
            " return {fcp: p ? p.startTime : null, ttfb: n.responseStart, load: n.loadEventEnd}; }"
        )
        print(
            f"overview on localhost: first contentful paint {paint['fcp']:.0f} ms, "
            f"first byte {paint['ttfb']:.0f} ms, load {paint['load']:.0f} ms"
        )
        shoot(page, "overview", "/")
        shoot(page, "flow", f"/flow/?session={session_id}")
        shoot(page, "session", f"/sessions/{session_id}/")
        if developer:
            shoot(page, "agent", f"/agents/{developer.pk}/")
        shoot(page, "decisions", "/decisions/")

        def invalid_spawn(p):
            p.fill("#id_name", "")
            p.fill("#id_workspace", "relative/path")
            p.click("button:has-text('Spawn team')")
            p.wait_for_selector(".field-errors")

        shoot(page, "report", f"/reports/?period=7d&session={session_id}")
        shots.append(report_pdf_page(out / "report-pdf.png", session_id))
        shoot(page, "spawn-team", "/teams/new/", before=invalid_spawn)
        shoot(page, "submit-work", f"/work/new/?session={session_id}")
        context.close()

        context, page = signed_in({"width": 375, "height": 812})
        shoot(page, "phone-overview", "/", full_page=False)
        context.close()
        browser.close()
    return shots


def report_pdf_page(target: Path, session_id: int) -> Path:
    """The first page of the session's report PDF (printed by the server's Chromium), as a PNG via pdftoppm."""
    from coordination.models import Session
    from reports.inputs import parse_period
    from reports.views import report_pdf_bytes

    if not shutil.which("pdftoppm"):
        raise SystemExit("pdftoppm (Debian's poppler-utils) is needed to picture the report PDF")
    period = parse_period({"period": "7d", "session": str(Session.objects.get(pk=session_id).pk)})
    pdf = target.with_suffix(".pdf")
    pdf.write_bytes(report_pdf_bytes(period))
    try:
        argv = ["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile"]
        subprocess.run([*argv, str(pdf), str(target.parent / target.stem)], check=True)
    finally:
        pdf.unlink()
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(BASE_DIR / "docs" / "screenshots"))
    parser.add_argument("--keep", action="store_true", help="Keep the temporary database and logs.")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hive-screenshots-"))
    server = None
    stop = threading.Event()
    runner = None
    try:
        env = setup_django(workdir)
        state = seed()
        engine = state["engine"]
        runner = threading.Thread(target=engine.run, kwargs={"stop": stop, "interval": 0.3}, daemon=True)
        runner.start()
        server, url = start_server(env, workdir)
        for path in capture(url, out, state["session"]):
            print(path.relative_to(BASE_DIR) if path.is_relative_to(BASE_DIR) else path)
    finally:
        stop.set()
        if runner is not None:
            runner.join(timeout=10)
            from django.db import connections

            state["engine"].shutdown(grace=2)
            connections.close_all()
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
