"""Event latency: commit-to-client time of coordination events over WebSockets.

    .venv/bin/python -m bench.event_latency --clients 100 --rate 100 --duration 30

Starts daphne (one process) on a free 127.0.0.1 port against a dedicated PostgreSQL
database and Redis db, connects `--clients` token-authenticated WebSocket clients
(websockets package, spread over `--client-processes` processes) to
`ws/coordination/`, then writes events through `events_record` at `--rate` events/s,
one committed transaction each, as a service would. The commit time of each event is
taken by an on_commit hook registered before the publish hook, so the figure is
commit → channels-redis → the live feed in daphne → every socket → the client's
event loop. Reports p50/p90/p99/max over every (client, event) pair, and any event a
client missed, got twice or got out of order.

`--without-redis` runs daphne on the in-memory layer instead: events then reach it
only through the live feed's tail of the table (LIVEFEED_TAIL_INTERVAL, 0.25 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/hive_bench_ws"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
END_MESSAGE = "bench end"


def clock() -> float:
    """System-wide monotonic clock: comparable between the publisher and the client processes."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100, help="WebSocket clients (default 100)")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second (default 100)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of publishing (default 30)")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the clients run in (default 2)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--without-redis", action="store_true", help="in-memory layer: the table tail only")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.rate <= 0 or args.duration <= 0 or args.client_processes < 1:
        parser.error("--clients, --rate, --duration and --client-processes must be positive")
    if not args.database_url.startswith(("postgres://", "postgresql://")) or "bench" not in args.database_url:
        parser.error("--database-url must be a PostgreSQL database whose name contains 'bench'")
    return args


# --- Database and server ----------------------------------------------------------------------


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup_django(args: argparse.Namespace) -> None:
    os.environ["DATABASE_URL"] = args.database_url
    if args.without_redis:
        os.environ.pop("REDIS_URL", None)
    else:
        os.environ["REDIS_URL"] = args.redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "hive_project.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_token() -> str:
    from django.contrib.auth.models import User
    from django.db import connection

    from bench.tokens import fresh_token

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE coordination_coordinationevent RESTART IDENTITY")
    user, _ = User.objects.get_or_create(username="bench-viewer")
    return fresh_token(user)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_daphne(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hive_project.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"daphne exited:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"daphne did not listen within 60 s:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- Clients (separate processes, no Django) --------------------------------------------------


def client_process(port: int, token: str, count: int, ready, results, timeout: float) -> None:
    asyncio.run(_clients(port, token, count, ready, results, timeout))


async def _clients(port: int, token: str, count: int, ready, results, timeout: float) -> None:
    from websockets.asyncio.client import connect

    async def one() -> list[tuple[int, float]]:
        received: list[tuple[int, float]] = []
        async with connect(
            f"ws://127.0.0.1:{port}/ws/coordination/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Authorization": f"Token {token}"},
            open_timeout=60,
            max_queue=None,
        ) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello", hello
            ready.put(1)
            async for raw in ws:
                at = clock()
                # An event is `{"id": N, ...}` (event_payload's key order); read just the id, cheaply,
                # so the clients' own CPU adds as little as possible to the measured latency.
                if raw.startswith('{"id": '):
                    received.append((int(raw[7 : raw.index(",", 7)]), at))
                    if END_MESSAGE in raw:
                        break
        return received

    try:
        outcome = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout=timeout)
    except TimeoutError:
        outcome = None
    results.put((outcome, time.process_time()))


# --- Publisher --------------------------------------------------------------------------------


def publish(rate: float, duration: float) -> dict[int, float]:
    """Write events one committed transaction at a time; returns id → commit time."""
    from django.db import transaction
    from django.utils import timezone

    from coordination.events import EventDraft, events_record

    total = max(1, int(rate * duration))
    committed: dict[int, float] = {}
    started = clock()
    for i in range(total + 1):
        target = started + i / rate
        delay = target - clock()
        if delay > 0:
            time.sleep(delay)
        stamp: list[float] = []
        with transaction.atomic():
            transaction.on_commit(lambda stamp=stamp: stamp.append(clock()))  # runs before the publish hook
            message = END_MESSAGE if i == total else f"bench {i}"
            [event] = events_record([EventDraft(type="session_updated", message=message)], now=timezone.now())
        committed[event.pk] = stamp[0]
    return committed


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ensure_database(args.database_url)
    setup_django(args)
    token = bench_token()

    from django.conf import settings

    port = free_port()
    daphne = start_daphne(args, port, ROOT / "var" / "bench-event-latency-daphne.log")
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    processes = []
    try:
        shares = [
            args.clients // args.client_processes + (i < args.clients % args.client_processes)
            for i in range(args.client_processes)
        ]
        timeout = args.duration + 120
        for share in filter(None, shares):
            proc = context.Process(target=client_process, args=(port, token, share, ready, results, timeout))
            proc.start()
            processes.append(proc)
        for _ in range(args.clients):
            ready.get(timeout=120)
        time.sleep(0.5)  # let every socket settle into live delivery

        daphne_cpu = cpu_seconds(daphne.pid)
        committed = publish(args.rate, args.duration)
        daphne_cpu = cpu_seconds(daphne.pid) - daphne_cpu
        received: list[list[tuple[int, float]]] = []
        clients_cpu = 0.0
        for _ in processes:
            outcome, cpu = results.get(timeout=timeout)
            if outcome is None:
                raise SystemExit("clients timed out before the last event arrived")
            received.extend(outcome)
            clients_cpu += cpu
    finally:
        for proc in processes:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        stop(daphne)

    expected = sorted(committed)
    latencies: list[float] = []
    lost = duplicated = out_of_order = 0
    for events in received:
        ids = [event_id for event_id, _ in events]
        duplicated += len(ids) - len(set(ids))
        out_of_order += sum(1 for a, b in zip(ids, ids[1:], strict=False) if b <= a)
        lost += len(set(expected) - set(ids))
        latencies.extend((at - committed[event_id]) * 1000 for event_id, at in events if event_id in committed)
    latencies.sort()

    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(
        f"settings: clients={args.clients} in {len(processes)} processes, rate={args.rate:g}/s, "
        f"duration={args.duration:g} s, events={len(expected)}, layer={layer}, "
        f"tail every {settings.LIVEFEED_TAIL_INTERVAL:g} s, python {sys.version.split()[0]}, cpus={os.cpu_count()}"
    )
    print(
        f"commit-to-client latency over {len(latencies)} deliveries: p50 {statistics.median(latencies):.1f} ms, "
        f"p90 {percentile(latencies, 90):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )
    print(
        f"daphne CPU while publishing: {daphne_cpu:.1f} s = {daphne_cpu / args.duration * 100:.0f}% of one core, "
        f"{daphne_cpu / max(1, len(latencies)) * 1e6:.0f} µs per delivered message; clients' CPU "
        f"{clients_cpu:.1f} s in all; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"lost {lost}, duplicated {duplicated}, out of order {out_of_order}")
    if lost or duplicated or out_of_order:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
