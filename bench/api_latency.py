"""Latency of the read endpoints the dashboards poll, against a large PostgreSQL database.

Seeds a separate database (never the development one) with COPY, starts daphne on a
free 127.0.0.1 port as a subprocess, fires concurrent token-authenticated requests at
/api/coordination/status, /metrics for each window, /business-value, the events cursor,
the console overview and a session page, and reports p50/p99 per endpoint with the
settings it ran with and the machine's load average. Events and attempts are generated in
the database (generate_series); the hourly rollups are caught up before the load.

    .venv/bin/python -m bench.api_latency --events 10000000 --tasks 1000000 --concurrency 8 --requests 400 \\
        --database-url postgres://postgres@127.0.0.1:5432/hive_metrics_big

A benchmark, not a test: it asserts nothing, it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
ROLES = ["product_manager", "architect", "developer", "reviewer", "tester", "devops"]
STEPS = ["spec", "architecture", "implement", "review", "test", "ci"]
PATTERNS = ["feature_delivery", "code_review_cycle", "pair_programming", "ci_cd"]
EVENT_TYPES = ["task_assigned", "task_completed", "task_handoff", "code_review_cycle", "work_submitted"]
SPAN = timedelta(days=30)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8, help="Concurrent client threads.")
    parser.add_argument("--requests", type=int, default=400, help="Requests per endpoint.")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/hive_bench")
    parser.add_argument("--reuse", action="store_true", help="Keep an already seeded database of the same size.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    parts = urlsplit(args.database_url)
    if not parts.scheme.startswith("postgres"):
        parser.error("--database-url must be a PostgreSQL URL")
    name = parts.path.lstrip("/")
    dev = urlsplit(os.environ.get("DATABASE_URL", "")).path.lstrip("/")
    if not ("bench" in name or name.endswith("_big")) or name == dev:
        parser.error(f"refusing to seed {name!r}: use a dedicated database named *bench* or *_big")
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_database(url: str, *, recreate: bool) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and recreate:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- seeding ----------------------------------------------------------------------------


def copy_rows(model, rows) -> int:
    """COPY rows (dicts keyed by attname) into the model's table; missing fields take their defaults."""
    from django.db import connection
    from psycopg.types.json import Jsonb

    fields = [f for f in model._meta.concrete_fields]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    # get_default() is "" for text columns without a default, None for the rest.
    defaults = {f.attname: (f.get_default() if f.has_default() or not f.null else None) for f in fields}
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.connection.cursor()
        with raw.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                values = []
                for f in fields:
                    value = row[f.attname] if f.attname in row else defaults.get(f.attname)
                    if f.attname in json_fields:
                        value = Jsonb(value)
                    values.append(value)
                copy.write_row(values)
                count += 1
    return count


def reset_sequences(models) -> None:
    from django.core.management.color import no_style
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)


def seed(args) -> dict:
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from agents.models import Agent
    from coordination.models import (
        CoordinationEvent,
        CoordinatorInstance,
        Decision,
        Session,
        Task,
        TaskAttempt,
        Workflow,
    )
    from coordination.permissions import OPERATORS_GROUP

    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    start = now - SPAN
    started = time.monotonic()

    copy_rows(
        Session,
        (
            {
                "id": i,
                "name": f"bench-{i}",
                "workspace": f"/tmp/bench-{i}",
                "status": "active",
                "created_at": start,
                "updated_at": start,
            }
            for i in range(1, args.sessions + 1)
        ),
    )
    agents = []
    for session in range(1, args.sessions + 1):
        for role in ROLES:
            agents.append((len(agents) + 1, session, role))
    copy_rows(
        Agent,
        (
            {
                "id": aid,
                "name": f"{role}-{aid}",
                "role": role,
                "status": "idle",
                "session_id": sid,
                "runtime": "scripted" if aid % 3 else "command",
                "heartbeat_at": now,
                "created_at": start,
                "updated_at": now,
            }
            for aid, sid, role in agents
        ),
    )
    by_session_role = {(sid, role): aid for aid, sid, role in agents}

    workflows = max(1, -(-args.tasks // len(STEPS)))  # ceil: the last workflow may be short
    wf_rows = []
    task_rows = []
    task_id = 0
    for wid in range(1, workflows + 1):
        session = rng.randint(1, args.sessions)
        created = start + (SPAN * (wid / workflows)) - timedelta(seconds=rng.randint(0, 600))
        outcome = rng.random()
        status = "completed" if outcome < 0.85 else ("failed" if outcome < 0.93 else "running")
        clock = created
        for index, step in enumerate(STEPS):
            if task_id >= args.tasks:
                break
            task_id += 1
            t_start = clock + timedelta(seconds=rng.uniform(1, 60))
            t_end = t_start + timedelta(seconds=rng.uniform(30, 900))
            clock = t_end
            last = index == len(STEPS) - 1
            t_status = "completed" if status != "running" or index < 3 else ("running" if index == 3 else "pending")
            if status == "failed" and last:
                t_status = "failed"
            finished = t_status in ("completed", "failed")
            role = ROLES[index]
            task_rows.append(
                {
                    "id": task_id,
                    "workflow_id": wid,
                    "session_id": session,
                    "step": step,
                    "role": role,
                    "title": f"{step} of work {wid}",
                    "status": t_status,
                    "round": 2 if step == "review" and rng.random() < 0.2 else 1,
                    "attempt": 1 if t_status != "pending" else 0,
                    "agent_id": by_session_role[(session, role)] if t_status != "pending" else None,
                    "lease_expires_at": now + timedelta(hours=1) if t_status == "running" else None,
                    "human_estimate_hours": Decimal(rng.choice(["0.50", "1.00", "2.00", "4.00"])),
                    "tokens_in": rng.randint(500, 5000),
                    "tokens_out": rng.randint(100, 2000),
                    "cost_usd": Decimal(rng.randint(1, 500)) / 10000,
                    "simulated": rng.random() < 0.7,
                    "created_at": t_start,
                    "ready_at": t_start,
                    "started_at": t_start if t_status != "pending" else None,
                    "finished_at": t_end if finished else None,
                    "outcome": "success" if t_status == "completed" else "",
                }
            )
        wf_rows.append(
            {
                "id": wid,
                "session_id": session,
                "pattern": rng.choice(PATTERNS),
                "title": f"work {wid}",
                "status": status,
                "human_estimate_hours": Decimal("8.00"),
                "human_interventions": 1 if rng.random() < 0.1 else 0,
                "state": {"visits": {"review": 1}},
                "created_at": created,
                "completed_at": clock if status != "running" else None,
            }
        )
    copy_rows(Workflow, wf_rows)
    copy_rows(Task, task_rows)

    decisions = []
    for did, wid in enumerate(range(7, workflows + 1, 50), start=1):
        created = wf_rows[wid - 1]["created_at"]
        answered = did % 5 != 0
        decisions.append(
            {
                "id": did,
                "session_id": wf_rows[wid - 1]["session_id"],
                "workflow_id": wid,
                "kind": "review_deadlock",
                "question": f"Review deadlock on work {wid}",
                "options": [{"key": "approve", "label": "Approve"}, {"key": "abandon", "label": "Stop"}],
                "default_option": "abandon",
                "deadline": created + timedelta(hours=24),
                "status": "answered" if answered else "open",
                "answer": "approve" if answered else "",
                "answered_at": created + timedelta(minutes=rng.randint(1, 600)) if answered else None,
                "created_at": created,
            }
        )
    copy_rows(Decision, decisions)

    seed_events(events=args.events, workflows=workflows, agents=len(agents), start=start)
    seed_attempts()
    copy_rows(
        CoordinatorInstance,
        [{"id": 1, "name": "bench", "hostname": "bench", "pid": os.getpid(), "heartbeat_at": now, "started_at": now}],
    )
    reset_sequences([Session, Agent, Workflow, Task, TaskAttempt, Decision, CoordinationEvent, CoordinatorInstance])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    user, _ = User.objects.get_or_create(username="bench-operator")
    user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    return {"seconds": round(time.monotonic() - started, 1)}


def seed_events(*, events: int, workflows: int, agents: int, start: datetime) -> None:
    """`events` events spread evenly over SPAN, generated in the database (generate_series), indexes built after."""
    from django.db import connection

    table = "coordination_coordinationevent"
    types = "ARRAY[" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + "]"
    steps = "ARRAY[" + ", ".join(f"'{t}'" for t in STEPS) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
            [table, "%pkey"],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
        foreign = cursor.fetchall()
        for name, _ in foreign:  # the ids below are all seeded; the constraints come back NOT VALID
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # Each event names a (scattered) workflow and takes that workflow's session.
        cursor.execute(
            f"""
            INSERT INTO {table} (id, type, session_id, workflow_id, task_id, agent_id, participants, message,
                                 collaboration_data, business_impact, simulated, created_at)
            SELECT g, ({types})[1 + g %% {len(EVENT_TYPES)}], w.session_id, w.id, NULL,
                   1 + (g * 7919) %% %s, '[]'::jsonb, 'bench event ' || g,
                   jsonb_build_object('step', ({steps})[1 + g %% {len(STEPS)}]), '{{}}'::jsonb, true,
                   %s::timestamptz + (%s::interval * g / %s)
            FROM generate_series(1::bigint, %s) AS g
            JOIN coordination_workflow w ON w.id = 1 + (g * 104729) %% %s
            """,
            [agents, start, SPAN, events, events, workflows],
        )
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in foreign:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition} NOT VALID')


def seed_attempts() -> None:
    """One attempt per started task, and a failed first try before 5 % of them (set-based)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO coordination_taskattempt (task_id, number, agent_id, status, outcome, summary, started_at,
                                                  finished_at)
            SELECT id, 1, agent_id, 'failed', 'failure', 'bench: failed first try', started_at,
                   started_at + (finished_at - started_at) / 3
            FROM coordination_task WHERE finished_at IS NOT NULL AND id %% 20 = 0
            """,
            [],
        )
        cursor.execute(
            """
            INSERT INTO coordination_taskattempt (task_id, number, agent_id, status, outcome, summary, started_at,
                                                  finished_at)
            SELECT id, CASE WHEN finished_at IS NOT NULL AND id %% 20 = 0 THEN 2 ELSE 1 END, agent_id,
                   CASE status WHEN 'completed' THEN 'succeeded' WHEN 'failed' THEN 'failed' ELSE 'running' END,
                   outcome, '', started_at, finished_at
            FROM coordination_task WHERE started_at IS NOT NULL
            """,
            [],
        )


def console_session(user) -> str:
    """A signed-in console session (database-backed) for the operator: the value of its cookie."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


def seeded_size() -> tuple[int, int]:
    from coordination.models import CoordinationEvent, Task

    return Task.objects.count(), CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def heartbeat_forever(stop: threading.Event, url: str) -> None:
    """Keep the seeded daemon alive so status reports a leader and health is computed as in production."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.wait(5):
            conn.execute("UPDATE coordination_coordinatorinstance SET heartbeat_at = now() WHERE id = 1")


# --- load ------------------------------------------------------------------------------------


def run_load(*, base: str, token: str, cookie: str, endpoints: list[str], concurrency: int, requests: int) -> dict:
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)
    headers = {"Authorization": f"Token {token}"}
    results: dict[str, list[float]] = {path: [] for path in endpoints}
    errors: dict[str, int] = {path: 0 for path in endpoints}
    plan = [path for path in endpoints for _ in range(requests)]
    random.Random(1).shuffle(plan)
    local = threading.local()

    def fire(path: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(
                base_url=base, headers=headers, cookies={"sessionid": cookie}, timeout=30
            )
        t0 = time.perf_counter()
        try:
            ok = client.get(path).status_code == 200
        except httpx.TransportError:  # a timeout counts as an error, at the time it took
            ok = False
        elapsed = (time.perf_counter() - t0) * 1000
        if not ok:
            errors[path] += 1
        results[path].append(elapsed)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for path in endpoints:  # warm caches and connections
            for _ in range(3):
                pool.submit(fire, path).result()
        for values in results.values():
            values.clear()
        started = time.perf_counter()
        list(pool.map(fire, plan))
        wall = time.perf_counter() - started
    report = {}
    for path, values in results.items():
        values.sort()
        report[path] = {
            "n": len(values),
            "errors": errors[path],
            "p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 1),
            "max_ms": round(values[-1], 1),
        }
    return {"endpoints": report, "wall_s": round(wall, 1), "rps": round(len(plan) / wall, 1)}


def main(argv=None) -> None:
    args = parse_args(argv)
    ensure_database(args.database_url, recreate=not args.reuse)
    setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seeding = {"seconds": 0, "reused": True}
    tasks, events = seeded_size()
    # Earlier versions seeded whole workflows only (up to five tasks fewer).
    if not args.reuse or events != args.events or not 0 <= args.tasks - tasks < len(STEPS):
        if args.reuse:
            from django.db import connection

            connection.close()
            ensure_database(args.database_url, recreate=True)
            call_command("migrate", verbosity=0)
        seeding = seed(args)
    from django.contrib.auth.models import User
    from django.db import connection

    from bench.tokens import fresh_token
    from metrics import rollups

    rolling = time.monotonic()
    seeding["rolled_hours"] = rollups.catch_up()
    seeding["rollup_seconds"] = round(time.monotonic() - rolling, 1)
    operator = User.objects.get(username="bench-operator")
    token = fresh_token(operator)
    cookie = console_session(operator)

    connection.close()

    port = free_port()
    env = {**os.environ, "DATABASE_URL": args.database_url, "DEBUG": "false", "LOG_LEVEL": "WARNING"}
    # The rate limits are counted as in production but set out of reach: the load is the point.
    env.update({"HIVE_API_RATE_TOKEN": "100000000/min", "HIVE_API_RATE_USER": "100000000/min"})
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hive_project.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stop = threading.Event()
    beat = threading.Thread(target=heartbeat_forever, args=(stop, args.database_url), daemon=True)
    beat.start()
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"daphne did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        endpoints = [
            "/api/coordination/status",
            *[f"/api/coordination/metrics?window={w}" for w in ("1h", "24h", "7d", "all")],
            "/api/coordination/business-value?window=24h",
            "/api/coordination/business-value?window=all",
            # A client following the live tail, and one reading history from the middle.
            f"/api/events?after={max(args.events - 500, 0)}&limit=100",
            f"/api/events?after={args.events // 2}&limit=100",
            "/?window=24h",
            "/?window=all",
            "/sessions/1/",
        ]
        load_before = os.getloadavg()
        load = run_load(
            base=base,
            token=token,
            cookie=cookie,
            endpoints=endpoints,
            concurrency=args.concurrency,
            requests=args.requests,
        )
        load["loadavg"] = {"start": load_before, "end": os.getloadavg()}
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    report = {
        "settings": {
            "events": args.events,
            "tasks": args.tasks,
            "sessions": args.sessions,
            "concurrency": args.concurrency,
            "requests_per_endpoint": args.requests,
            "database": urlsplit(args.database_url).path.lstrip("/"),
            "server": "daphne (one process) on 127.0.0.1, in-memory channel layer",
            "cpus": os.cpu_count(),
        },
        "seeding": seeding,
        **load,
    }
    width = max(len(p) for p in load["endpoints"])
    print(json.dumps(report["settings"]))
    print(
        f"seeded in {seeding['seconds']} s; rolled {seeding['rolled_hours']} hour(s) in {seeding['rollup_seconds']} s;"
        f" {load['rps']} req/s over {load['wall_s']} s"
    )
    print(f"load average (1, 5, 15 min): start {load['loadavg']['start']}, end {load['loadavg']['end']}")
    print(f"{'endpoint':<{width}}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  errors")
    for path, row in load["endpoints"].items():
        print(f"{path:<{width}}  {row['p50_ms']:>8}  {row['p99_ms']:>8}  {row['max_ms']:>8}  {row['errors']}")


if __name__ == "__main__":
    main()
