"""The coordinator's tick: ordinary code a test can call, and the loop the daemon runs.

One tick: heartbeat, housekeeping (dead daemons, expired leases, dead agents,
overdue decisions), apply finished results, renew leases, claim ready work and
hand it to a bounded pool of worker threads that run the runtimes. Worker
threads never touch the database; the tick thread does all the writing.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import waffle
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from agents.runtimes import Outcome, RuntimeResult, build_runtime

from .actors import acting
from .models import CoordinatorInstance
from .services import deliveries, dispatch
from .services.decisions import decisions_expire
from .services.retention import DailyPrune
from .signals import housekeeping
from .spool import ResultSpool, orphaned_spools

logger = logging.getLogger(__name__)

PAUSED_SWITCH = "coordination_paused"
# Consecutive failures of one batch of results before they are applied one by one.
APPLY_RETRIES = 3


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not a bad result)."""
    return isinstance(exc, (OperationalError, InterfaceError))


@dataclass
class TickReport:
    claimed: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    reclaimed: int = 0
    expired_decisions: int = 0
    in_flight: int = 0
    paused: bool = False
    duration_ms: float = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.claimed or sum(self.applied.values()) or self.reclaimed)


@dataclass
class InFlight:
    """One running attempt: the claim and the event that stops its runtime."""

    claim: dispatch.Claim
    cancel: threading.Event = field(default_factory=threading.Event)
    result: RuntimeResult | None = None


def switch_enabled(name: str, *, default: bool) -> bool:
    """A waffle switch's state; a switch nobody created yet keeps its documented default."""
    switch = waffle.get_waffle_switch_model().get(name)
    return default if switch.pk is None else bool(switch.active)


def run_claim(
    claim: dispatch.Claim, cancel: threading.Event, plan: deliveries.AttemptPlan | None = None
) -> RuntimeResult:
    """Execute one claimed task; never raises (a crash is a recorded failure)."""
    started = time.monotonic()
    try:
        runtime = build_runtime(claim.runtime, claim.runtime_config)
        if plan is None:
            return runtime.run(claim.context, cancel=cancel)
        # a code session's attempt runs in its own worktree and its claim is verified (deliveries)
        return deliveries.attempt_run(plan=plan, ctx=claim.context, run=lambda ctx: runtime.run(ctx, cancel=cancel))
    except Exception as exc:  # a broken runtime must not take the daemon down
        logger.exception("Runtime %s crashed on task %s", claim.runtime, claim.task_id)
        return RuntimeResult(
            outcome=Outcome.FAILURE,
            error=f"runtime crashed: {type(exc).__name__}: {exc}",
            duration_s=time.monotonic() - started,
        )


def _housekeeping_receivers(*, instance: CoordinatorInstance) -> None:
    """Other apps' periodic checks (the coordination objective); one failing never stops the daemon."""
    for receiver, outcome in housekeeping.send_robust(sender=Engine, instance=instance):
        if isinstance(outcome, Exception):
            logger.error("Housekeeping receiver %r failed", receiver, exc_info=outcome)


def _as_daemon(method):
    """What the engine changes is recorded as done by its daemon (the events' actor is the instance's name)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with acting(self.instance.name):
            return method(self, *args, **kwargs)

    return wrapper


class Engine:
    """One daemon's worth of coordination; `tick()` is safe to call from tests."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        claim_batch: int | None = None,
        housekeeping_interval: float = 2.0,
        instance: CoordinatorInstance | None = None,
        name: str = "",
    ):
        self.concurrency = concurrency
        # How many tasks may be leased at once: the pool plus a queue of ready work.
        self.max_in_flight = max(claim_batch or concurrency, 1)
        # With other daemons live, at most this daemon's fair share (coordinators_fair_share); None: no cap.
        self.fair_share: int | None = None
        self.instance = instance or dispatch.coordinator_register(concurrency=concurrency, name=name)
        self.stopping = threading.Event()  # set once shutdown begins: claim nothing more
        self.wake = threading.Event()  # set when a result arrives or on stop
        self.hurry = threading.Event()  # set to cut the shutdown grace short
        self.results: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        # Keyed by (task, attempt): a task reclaimed and claimed again by this same daemon
        # runs as two entries, and the stale one can never pop the current one.
        self.in_flight: dict[tuple[int, int], InFlight] = {}
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hive-runtime")
        self.housekeeping_interval = housekeeping_interval
        # Renewals keep the leases and the working agents' heartbeats: faster than either runs out.
        self.renew_interval = max(1.0, min(settings.HIVE["LEASE_SECONDS"], settings.HIVE["HEARTBEAT_TIMEOUT"]) / 3)
        self._last_housekeeping = float("-inf")
        # Finished results the database could not take yet, also on disk (coordination/spool.py).
        self.spool = ResultSpool(self.instance.pk)
        self.retention = DailyPrune(owner=f"coordinator {self.instance.name} (#{self.instance.pk})")
        self._last_renew = time.monotonic()
        self._apply_failures = 0
        self.paused = False
        self.processed = 0
        self.coalesce_s = 0.002
        self.coalesce_max_s = 0.02
        self.last_tick_ms = 0.0

    # --- the tick ------------------------------------------------------------

    @_as_daemon
    def tick(self) -> TickReport:
        started = time.monotonic()
        report = TickReport()
        if started - self._last_housekeeping >= self.housekeeping_interval:
            self._last_housekeeping = started
            self._housekeeping(report)
        claiming = not self.stopping.is_set() and not self.paused
        if claiming and not self._apply_failures and self._has_results():
            # The common busy tick: results applied and new work claimed in one transaction.
            if self.in_flight and time.monotonic() - self._last_renew >= self.renew_interval:
                self.renew_leases()
            combined = self._apply_and_claim()
            if combined is not None:
                report.applied, report.claimed = combined
                claiming = False
        if not report.applied and not report.claimed:
            report.applied = self._apply_results()
            if self.in_flight and time.monotonic() - self._last_renew >= self.renew_interval:
                self.renew_leases()
        if claiming:
            report.claimed = self._claim()
        report.in_flight = len(self.in_flight)
        report.paused = self.paused
        report.duration_ms = self.last_tick_ms = (time.monotonic() - started) * 1000
        return report

    def _has_results(self) -> bool:
        return any(entry.result is not None for entry in self.in_flight.values())

    def _apply_and_claim(self) -> tuple[dict[str, int], int] | None:
        """Apply finished results and claim in one transaction; None when it failed (nothing was written)."""
        self._drain_wakeups()
        done = [(key, entry) for key, entry in self.in_flight.items() if entry.result is not None]
        finished = [
            dispatch.Finished(task_id=key[0], attempt=key[1], result=entry.result)  # type: ignore[arg-type]
            for key, entry in done
        ]
        free = self.claim_cap() - len(self.in_flight) + len(done)
        try:
            counts, claims = dispatch.tasks_apply_and_claim(instance=self.instance, finished=finished, limit=free)
        except Exception:
            # Retried below as two transactions, with the usual handling of a failing batch.
            logger.warning("Applying results and claiming in one transaction failed", exc_info=True)
            return None
        for key, _ in done:
            self.in_flight.pop(key, None)
        self.spool.applied([key for key, _ in done])
        self.processed += len(done)
        self._start(claims)
        return counts, len(claims)

    def _drain_wakeups(self) -> None:
        while True:
            try:
                self.results.get_nowait()
            except queue.Empty:
                return

    def _housekeeping(self, report: TickReport) -> None:
        dispatch.coordinator_heartbeat(instance=self.instance, processed=self.processed, tick_ms=self.last_tick_ms)
        self.processed = 0
        self._apply_orphaned_spools()
        # Read at most once per housekeeping interval; waffle caches it as well.
        self.paused = waffle.switch_is_active(PAUSED_SWITCH)
        dispatch.coordinators_mark_dead()
        self.fair_share = dispatch.coordinators_fair_share()
        report.reclaimed = dispatch.tasks_reclaim_expired() + dispatch.agents_reclaim_dead()
        report.expired_decisions = decisions_expire()
        self.retention.step()  # daily event retention when HIVE_EVENT_RETENTION_DAYS is set; never raises
        _housekeeping_receivers(instance=self.instance)

    def renew_leases(self) -> None:
        """Extend the leases of running work; a runtime whose lease was lost is told to stop."""
        held = dispatch.tasks_lease_renew(instance=self.instance, task_ids=sorted({k[0] for k in self.in_flight}))
        self._last_renew = time.monotonic()
        for (task_id, attempt), entry in self.in_flight.items():
            if held.get(task_id) != attempt and entry.result is None and not entry.cancel.is_set():
                logger.warning("Lost the lease on task %s attempt %s; stopping its runtime", task_id, attempt)
                entry.cancel.set()

    def claim_cap(self) -> int:
        """Tasks this daemon may hold at once: its batch, or its fair share when that is smaller."""
        return self.max_in_flight if self.fair_share is None else min(self.max_in_flight, self.fair_share)

    def _claim(self) -> int:
        free = self.claim_cap() - len(self.in_flight)
        if free <= 0:
            return 0
        claims = dispatch.tasks_claim(instance=self.instance, limit=free)
        self._start(claims)
        return len(claims)

    def _start(self, claims: list[dispatch.Claim]) -> None:
        # read here, on the loop's connection, in one query: worker threads touch the database only for code sessions
        plans = deliveries.attempt_plans(claims=[(claim.task_id, claim.attempt) for claim in claims])
        for claim in claims:
            entry = InFlight(claim=claim)
            key = (claim.task_id, claim.attempt)
            self.in_flight[key] = entry
            future = self.pool.submit(run_claim, claim, entry.cancel, plans.get(claim.task_id))
            future.add_done_callback(lambda f, key=key: self._done(key, f))

    def _done(self, key: tuple[int, int], future: Future) -> None:
        # Runs in the worker thread: hand the result over, never touch the database here.
        entry = self.in_flight.get(key)
        if entry is not None:
            entry.result = future.result()
        self.results.put(key)
        self.wake.set()

    def _apply_results(self) -> dict[str, int]:
        """Apply every finished result; a batch that fails stays queued and is retried next tick."""
        self._drain_wakeups()
        done = [(key, entry) for key, entry in self.in_flight.items() if entry.result is not None]
        if not done:
            return {}
        finished = [
            dispatch.Finished(task_id=key[0], attempt=key[1], result=entry.result)  # type: ignore[arg-type]
            for key, entry in done
        ]
        try:
            counts = dispatch.task_results_apply(instance=self.instance, finished=finished)
        except Exception as exc:
            if database_unavailable(exc):
                # Finished work is kept, in memory and on disk, until the database takes it.
                self.spool.keep({key: entry.result for key, entry in done})
                raise
            self._apply_failures += 1
            if self._apply_failures < APPLY_RETRIES:
                raise
            # One poisoned result must not stall the rest: apply one by one, drop what still fails.
            counts = {}
            for (key, _), item in zip(done, finished, strict=True):
                try:
                    for kind, n in dispatch.task_results_apply(instance=self.instance, finished=[item]).items():
                        counts[kind] = counts.get(kind, 0) + n
                except Exception as exc:
                    if database_unavailable(exc):
                        self.spool.keep({k: e.result for k, e in done if k in self.in_flight})
                        raise
                    logger.exception("Dropping the result of task %s attempt %s; its lease will expire", *key)
                self.in_flight.pop(key, None)
                self.spool.applied([key])
            self._apply_failures = 0
            return counts
        self._apply_failures = 0
        for key, _ in done:
            self.in_flight.pop(key, None)
        self.spool.applied([key for key, _ in done])
        self.processed += len(done)
        return counts

    def _apply_orphaned_spools(self) -> None:
        """Apply the results a daemon that died during a database outage left on disk (fenced as always)."""
        for coordinator_id, results, release in orphaned_spools(exclude=self.instance.pk):
            finished = [dispatch.Finished(task_id=t, attempt=a, result=r) for (t, a), r in results.items()]
            try:
                counts = dispatch.task_results_apply(instance=CoordinatorInstance(pk=coordinator_id), finished=finished)
            except Exception as exc:
                if database_unavailable(exc):
                    release("retry")
                    raise
                logger.exception("Results kept by coordinator #%s cannot be applied; set aside", coordinator_id)
                release("failed")
                continue
            release("applied")
            logger.warning("Applied %d result(s) kept by coordinator #%s: %s", len(finished), coordinator_id, counts)

    # --- the loop ------------------------------------------------------------

    def run(self, *, stop: threading.Event, interval: float = 0.5, on_tick=None) -> None:
        """Tick until `stop` is set; waits on events, never out a sleep.

        A tick follows at once while results are waiting; otherwise the loop waits for
        the first result, then lets the rest of the burst land (`coalesce_s` of quiet,
        at most `coalesce_max_s`) so it is applied as one batch.
        """
        last_check = float("-inf")
        failed = False
        while not stop.is_set():
            if failed or time.monotonic() - last_check >= 1.0:
                # Drop connections past CONN_MAX_AGE or broken by an error. Not every tick:
                # with health checks on, each call costs a round trip on the next query.
                close_old_connections()
                last_check = time.monotonic()
            self.wake.clear()
            try:
                report = self.tick()
                failed = False
            except Exception:  # log and live on; the next tick retries
                logger.exception("Coordinator tick failed")
                report = TickReport()
                failed = True
                stop.wait(interval)
            if on_tick is not None:
                on_tick(report)
            if failed or report.reclaimed or self._has_results():
                continue
            if report.claimed and len(self.in_flight) < self.claim_cap() and not self.paused:
                continue  # there may be more to claim
            self.wake.wait(interval)
            if self.in_flight and not stop.is_set():
                self._coalesce(stop)

    def _coalesce(self, stop: threading.Event) -> None:
        """Wait while results keep arriving: until all are in, `coalesce_s` passes quietly, or `coalesce_max_s`."""
        deadline = time.monotonic() + self.coalesce_max_s
        while not stop.is_set():
            self.wake.clear()
            if all(entry.result is not None for entry in self.in_flight.values()):
                return
            left = deadline - time.monotonic()
            if left <= 0 or not self.wake.wait(min(self.coalesce_s, left)):
                return

    @_as_daemon
    def drain(self, *, timeout: float) -> None:
        """Wait for in-flight work to finish and apply it (tests and --once)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline and not self.hurry.is_set():
            if not any(entry.result is not None for entry in self.in_flight.values()):
                self.wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            if self.in_flight and time.monotonic() - self._last_renew >= self.renew_interval:
                self.renew_leases()  # a long grace must not let the leases run out
            self.wake.clear()
            self._apply_results()

    @_as_daemon
    def shutdown(self, *, grace: float = 10.0, reason: str = "shutdown") -> int:
        """Stop claiming, let running work finish within `grace`, hand the rest back. Returns tasks handed back."""
        self.stopping.set()
        dispatch.coordinator_stopping(instance=self.instance)
        try:
            self.drain(timeout=grace)
            self._apply_results()  # results that arrived at the very end are real work: keep them
        except Exception:
            logger.exception("Applying the last results failed; handing their tasks back")
        for entry in self.in_flight.values():
            entry.cancel.set()
        handed_back = 0
        if self.in_flight:
            handed_back = dispatch.tasks_hand_back(
                instance=self.instance, task_ids=sorted({k[0] for k in self.in_flight}), reason=f"coordinator {reason}"
            )
            self.in_flight.clear()
        # Runtimes were told to stop; their results belong to handed-back attempts and are dropped.
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.spool.close()
        dispatch.coordinator_stop(instance=self.instance, reason=reason)
        return handed_back
