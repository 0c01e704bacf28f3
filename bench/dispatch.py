"""Dispatch throughput: N tasks through zero-duration scripted agents, driven by the daemon's own loop.

    python -m bench.dispatch --tasks 20000 --agents 50

Runs on a dedicated PostgreSQL database (created and migrated if missing; its
coordination tables are emptied first). Work is submitted through the normal
service, then `Engine.run` — the loop `run_coordinator` runs — claims, runs and
applies it, writing every event and publishing it on the channel layer.
Reports end-to-end tasks/s and events/s for the dispatch window only.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hive_bench_dispatch"
PATTERNS = ("conflict_resolution", "task_handoff")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000, help="tasks to dispatch (default 20000)")
    parser.add_argument("--agents", type=int, default=50, help="scripted developer agents (default 50)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--concurrency", type=int, default=4, help="runtime worker threads (default 4)")
    parser.add_argument(
        "--claim-batch", type=int, default=None, help="tasks leased at once (default: one per agent slot)"
    )
    parser.add_argument(
        "--pattern",
        choices=PATTERNS,
        default="conflict_resolution",
        help="conflict_resolution: one task per workflow; task_handoff: two (start → finish)",
    )
    parser.add_argument("--agent-concurrency", type=int, default=1, help="tasks one agent may run at once")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the dispatch window to FILE")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.agents < 1 or args.concurrency < 1 or args.agent_concurrency < 1:
        parser.error("--tasks, --agents, --concurrency and --agent-concurrency must be positive")
    if args.claim_batch is not None and args.claim_batch < 1:
        parser.error("--claim-batch must be positive")
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL (the benchmark measures PostgreSQL)")
    return args


def ensure_database(url: str) -> None:
    """Create the benchmark database if it does not exist yet."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def reset_tables() -> None:
    from django.db import connection

    tables = [
        "coordination_coordinationevent",
        "coordination_taskattempt",
        "coordination_decision",
        "coordination_task_depends_on",
        "coordination_task",
        "coordination_workflow",
        "agents_agent",
        "coordination_session",
        "coordination_coordinatorinstance",
    ]
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(t for t in tables if t in existing)} RESTART IDENTITY CASCADE")


def backend_cpu_seconds() -> float | None:
    """CPU time of this process's PostgreSQL backend, when the server runs on this machine (Linux)."""
    from django.db import connection

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ensure_database(args.database_url)
    setup_django(args.database_url)

    from django.conf import settings
    from django.db import connection

    from agents.models import Agent
    from coordination.engine import Engine
    from coordination.models import CoordinationEvent, Task, Workflow
    from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit

    reset_tables()
    workspace = Path(settings.HIVE["WORKSPACE_ROOT"]) / "bench-dispatch"
    session = team_spawn(
        name="Dispatch benchmark",
        workspace=str(workspace),
        members=[
            MemberSpec(
                role="developer",
                name=f"dev-{i}",
                runtime="scripted",
                concurrency=args.agent_concurrency,
                runtime_config={"duration_s": 0},
            )
            for i in range(args.agents)
        ],
    )
    steps = 1 if args.pattern == "conflict_resolution" else 2
    workflows = -(-args.tasks // steps)
    submit_started = time.perf_counter()
    for i in range(workflows):
        work_submit(session=session, work=WorkSpec(title=f"Bench job {i}", pattern=args.pattern))
    submit_s = time.perf_counter() - submit_started
    total_tasks = workflows * steps

    claim_batch = args.claim_batch or args.agents * args.agent_concurrency
    engine = Engine(concurrency=args.concurrency, claim_batch=claim_batch)
    first_event = CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    stop = threading.Event()
    done = {"tasks": 0, "ticks": 0}

    def on_tick(report) -> None:
        done["ticks"] += 1
        done["tasks"] += sum(report.applied.values())
        if done["tasks"] >= total_tasks:
            stop.set()

    profiler = cProfile.Profile() if args.profile else None
    db_cpu_started = backend_cpu_seconds()
    load_started = os.getloadavg()[0]
    started = time.perf_counter()
    cpu_started = time.process_time()
    if profiler:
        profiler.enable()
    engine.run(stop=stop, interval=0.5, on_tick=on_tick)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    db_cpu_finished = backend_cpu_seconds()
    load_finished = os.getloadavg()[0]
    engine.shutdown(grace=5, reason="benchmark finished")

    last_event = CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    events = CoordinationEvent.objects.filter(id__gt=first_event, id__lte=last_event).exclude(
        type__in=["coordinator_started", "coordinator_stopped"]
    )
    event_count = events.count()
    completed = Task.objects.filter(status=Task.Status.COMPLETED).count()
    finished_workflows = Workflow.objects.filter(status=Workflow.Status.COMPLETED).count()
    assigned = events.filter(type="task_assigned").count()
    if completed != total_tasks or finished_workflows != workflows or assigned != total_tasks:
        raise SystemExit(
            f"benchmark incomplete: {completed}/{total_tasks} tasks, {finished_workflows}/{workflows} workflows, "
            f"{assigned} assignments"
        )
    assert not Agent.objects.exclude(active_tasks=0).exists(), "agent load counters drifted"

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"settings: tasks={total_tasks} ({workflows} {args.pattern} workflows) agents={args.agents} "
        f"agent_concurrency={args.agent_concurrency} worker_threads={args.concurrency} claim_batch={claim_batch} "
        f"lease={settings.HIVE['LEASE_SECONDS']}s PostgreSQL {pg_version} channel_layer={layer} "
        f"python {sys.version.split()[0]}"
    )
    print(f"submitted {workflows} workflows in {submit_s:.1f} s (not timed below)")
    print(
        f"dispatched {total_tasks} tasks in {elapsed:.2f} s over {done['ticks']} ticks: "
        f"{total_tasks / elapsed:,.0f} tasks/s, {event_count / elapsed:,.0f} events/s "
        f"({event_count} events, {event_count / total_tasks:.1f} per task); "
        f"daemon CPU {cpu:.2f} s = {total_tasks / cpu:,.0f} tasks per CPU-second"
    )
    if db_cpu_started is not None and db_cpu_finished is not None:
        print(f"the daemon's PostgreSQL backend used {db_cpu_finished - db_cpu_started:.2f} s of CPU meanwhile")
    print(f"load average (1 min) {load_started:.2f} at the start, {load_finished:.2f} at the end")
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
