"""Dispatch throughput: N tasks through zero-duration scripted agents, driven by the daemon's own loop.

    python -m bench.dispatch --tasks 20000 --agents 50 [--daemons 2]

Runs on a dedicated PostgreSQL database (created and migrated if missing; its
coordination tables are emptied first). Work is submitted through the normal
service, then `--daemons` coordinator processes (spawned, each with its own
Django and database connection) run `Engine.run` — the loop `run_coordinator`
runs — and claim, run and apply it, writing every event and publishing it on the
channel layer. The clock starts when all daemons are released at once and stops
when the daemons have applied every task. Reports end-to-end tasks/s and events/s
for that window only, each daemon's CPU and its PostgreSQL backend's CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass
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
    parser.add_argument("--daemons", type=int, default=1, help="coordinator processes sharing the database (default 1)")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="write a cProfile of the dispatch window to FILE (FILE.<n> per daemon when there are several)",
    )
    args = parser.parse_args(argv)
    if min(args.tasks, args.agents, args.concurrency, args.agent_concurrency, args.daemons) < 1:
        parser.error("--tasks, --agents, --concurrency, --agent-concurrency and --daemons must be positive")
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


def setup_django(url: str, *, migrate: bool = True) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if migrate:
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


def backend_cpu_seconds() -> tuple[int, float | None]:
    """This process's PostgreSQL backend: its pid and CPU time, when the server runs on this machine (Linux)."""
    from django.db import connection

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return pid, None
    return pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class DaemonReport:
    index: int
    tasks: int = 0
    ticks: int = 0
    cpu_s: float = 0.0
    backend_cpu_s: float | None = None
    error: str = ""


def daemon_main(index: int, url: str, options: dict, shared: dict) -> None:
    """One coordinator process: its own Django and connection, the daemon's `Engine.run` between go and stop."""
    report = DaemonReport(index=index)
    try:
        setup_django(url, migrate=False)
        from coordination.engine import Engine

        engine = Engine(
            concurrency=options["concurrency"], claim_batch=options["claim_batch"], name=f"bench-dispatch-{index}"
        )
        stop = threading.Event()  # a local event: the loop polls it every tick

        def relay_stop() -> None:
            shared["stop"].wait()
            stop.set()
            engine.wake.set()

        threading.Thread(target=relay_stop, daemon=True).start()
        total, counter, finished_at = options["total_tasks"], shared["counter"], shared["finished_at"]

        def on_tick(tick) -> None:
            report.ticks += 1
            applied = sum(tick.applied.values())
            if not applied:
                return
            report.tasks += applied
            with counter.get_lock():
                counter.value += applied
                if counter.value >= total and not shared["stop"].is_set():
                    finished_at.value = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
                    shared["stop"].set()

        profiler = cProfile.Profile() if options["profile"] else None
        pid_started, db_cpu_started = backend_cpu_seconds()
        shared["ready"].put(index)
        shared["go"].wait()
        cpu_started = time.process_time()
        if profiler:
            profiler.enable()
        engine.run(stop=stop, interval=0.5, on_tick=on_tick)
        if profiler:
            profiler.disable()
        report.cpu_s = time.process_time() - cpu_started
        pid_finished, db_cpu_finished = backend_cpu_seconds()
        if db_cpu_started is not None and db_cpu_finished is not None and pid_started == pid_finished:
            report.backend_cpu_s = db_cpu_finished - db_cpu_started
        engine.shutdown(grace=5, reason="benchmark finished")
        if profiler:
            profiler.dump_stats(options["profile"])
    except BaseException as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        shared["stop"].set()
        raise
    finally:
        shared["reports"].put(asdict(report))  # plain data: the class lives in __mp_main__ here


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ensure_database(args.database_url)
    setup_django(args.database_url)

    from django.conf import settings
    from django.db import connection

    from agents.models import Agent
    from coordination.models import CoordinationEvent, Task, TaskAttempt, Workflow
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
    first_event = CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    connection.close()  # the daemons are the only clients while the clock runs

    ctx = multiprocessing.get_context("spawn")
    shared = {
        "go": ctx.Event(),
        "stop": ctx.Event(),
        "counter": ctx.Value("q", 0),
        "finished_at": ctx.Value("d", 0.0),
        "ready": ctx.Queue(),
        "reports": ctx.Queue(),
    }
    processes = []
    for index in range(args.daemons):
        profile = args.profile and (args.profile if args.daemons == 1 else f"{args.profile}.{index}")
        options = {
            "concurrency": args.concurrency,
            "claim_batch": claim_batch,
            "total_tasks": total_tasks,
            "profile": profile,
        }
        process = ctx.Process(
            target=daemon_main, args=(index, args.database_url, options, shared), name=f"bench-daemon-{index}"
        )
        process.start()
        processes.append(process)

    def abort(message: str) -> None:
        shared["stop"].set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
        raise SystemExit(f"benchmark aborted: {message}")

    ready, deadline = 0, time.monotonic() + 120
    while ready < len(processes):
        if shared["stop"].is_set() or any(p.exitcode is not None for p in processes):
            abort("a daemon failed while starting")
        if time.monotonic() > deadline:
            abort("the daemons did not start within 120 s")
        try:
            shared["ready"].get(timeout=0.5)
            ready += 1
        except queue.Empty:
            pass

    load_started = os.getloadavg()[0]
    machine_started = machine_cpu_ticks()
    started = time.perf_counter()
    shared["go"].set()  # the clock runs from here
    progress, progress_at = 0, time.monotonic()
    while not shared["stop"].wait(0.5):
        if any(p.exitcode is not None for p in processes):
            abort("a daemon exited before the work was done")
        if shared["counter"].value != progress:
            progress, progress_at = shared["counter"].value, time.monotonic()
        elif time.monotonic() - progress_at > 60:
            abort(f"no progress for 60 s at {progress}/{total_tasks} tasks")
    machine_finished = machine_cpu_ticks()
    load_finished = os.getloadavg()[0]
    reports = []
    for _ in processes:
        try:
            reports.append(DaemonReport(**shared["reports"].get(timeout=60)))
        except Exception:
            abort("a daemon did not report within 60 s")
    for process in processes:
        process.join(30)
    reports.sort(key=lambda r: r.index)
    failed = [r for r in reports if r.error] or [p for p in processes if p.exitcode != 0]
    if failed:
        raise SystemExit(f"benchmark failed: {failed}")
    elapsed = shared["finished_at"].value - started
    cpu = sum(r.cpu_s for r in reports)
    ticks = sum(r.ticks for r in reports)
    busy = machine_finished[0] - machine_started[0]
    machine_busy = busy / max(machine_finished[1] - machine_started[1], 1)

    last_event = CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    events = CoordinationEvent.objects.filter(id__gt=first_event, id__lte=last_event).exclude(
        type__in=["coordinator_started", "coordinator_stopped"]
    )
    event_count = events.count()
    completed = Task.objects.filter(status=Task.Status.COMPLETED).count()
    finished_workflows = Workflow.objects.filter(status=Workflow.Status.COMPLETED).count()
    assigned = events.filter(type="task_assigned").count()
    assigned_tasks = events.filter(type="task_assigned").values("task_id").distinct().count()
    attempts = TaskAttempt.objects.count()
    if (
        completed != total_tasks
        or finished_workflows != workflows
        or assigned != total_tasks
        or assigned_tasks != total_tasks
        or attempts != total_tasks
    ):
        raise SystemExit(
            f"benchmark incomplete: {completed}/{total_tasks} tasks, {finished_workflows}/{workflows} workflows, "
            f"{assigned} assignments of {assigned_tasks} tasks, {attempts} attempts"
        )
    assert not Agent.objects.exclude(active_tasks=0).exists(), "agent load counters drifted"

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"settings: tasks={total_tasks} ({workflows} {args.pattern} workflows) agents={args.agents} "
        f"agent_concurrency={args.agent_concurrency} daemons={args.daemons} worker_threads={args.concurrency} "
        f"claim_batch={claim_batch} "
        f"lease={settings.HIVE['LEASE_SECONDS']}s PostgreSQL {pg_version} channel_layer={layer} "
        f"python {sys.version.split()[0]}"
    )
    print(f"submitted {workflows} workflows in {submit_s:.1f} s (not timed below)")
    print(
        f"dispatched {total_tasks} tasks in {elapsed:.2f} s over {ticks} ticks: "
        f"{total_tasks / elapsed:,.0f} tasks/s, {event_count / elapsed:,.0f} events/s "
        f"({event_count} events, {event_count / total_tasks:.1f} per task); "
        f"daemon CPU {cpu:.2f} s = {total_tasks / cpu:,.0f} tasks per CPU-second"
    )
    backend_cpu = [r.backend_cpu_s for r in reports]
    for r in reports:
        db = "unknown" if r.backend_cpu_s is None else f"{r.backend_cpu_s:.2f} s"
        print(
            f"  daemon {r.index}: {r.tasks} tasks over {r.ticks} ticks, CPU {r.cpu_s:.2f} s, "
            f"its PostgreSQL backend's CPU {db}"
        )
    if None not in backend_cpu:
        total_db = sum(backend_cpu)
        print(
            f"the daemons' PostgreSQL backends used {total_db:.2f} s of CPU meanwhile "
            f"({total_db * 1000 / total_tasks:.2f} ms per task)"
        )
    print(
        f"machine CPU busy {machine_busy:.0%} of {os.cpu_count()} cores during the window; "
        f"load average (1 min) {load_started:.2f} at the start, {load_finished:.2f} at the end"
    )
    if args.profile:
        pstats.Stats(args.profile if args.daemons == 1 else f"{args.profile}.0").sort_stats("cumulative").print_stats(
            30
        )


if __name__ == "__main__":
    main()
