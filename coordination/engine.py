"""The coordinator's tick: ordinary code a test can call, and the loop the daemon runs.

One tick: heartbeat, housekeeping (dead daemons, expired leases, overdue
decisions), apply finished results, renew leases, claim ready work and hand it
to a bounded pool of worker threads that run the runtimes. Worker threads never
touch the database; the tick thread does all the writing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections

from agents.runtimes import Outcome, RuntimeResult, build_runtime

from . import services
from .models import CoordinatorInstance

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    claimed: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    reclaimed: int = 0
    expired_decisions: int = 0
    in_flight: int = 0
    duration_ms: float = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.claimed or sum(self.applied.values()) or self.reclaimed)


def run_claim(claim: services.Claim, cancel: threading.Event) -> RuntimeResult:
    """Execute one claimed task; never raises (a crash is a recorded failure)."""
    started = time.monotonic()
    try:
        return build_runtime(claim.runtime, claim.runtime_config).run(claim.context, cancel=cancel)
    except Exception as exc:  # a broken runtime must not take the daemon down
        logger.exception("Runtime %s crashed on task %s", claim.runtime, claim.task_id)
        return RuntimeResult(
            outcome=Outcome.FAILURE,
            error=f"runtime crashed: {type(exc).__name__}: {exc}",
            duration_s=time.monotonic() - started,
        )


class Engine:
    """One daemon's worth of coordination; `tick()` is safe to call from tests."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        claim_batch: int | None = None,
        housekeeping_interval: float = 2.0,
        instance: CoordinatorInstance | None = None,
    ):
        self.concurrency = concurrency
        # How many tasks may be leased at once: the pool plus a queue of ready work.
        self.max_in_flight = claim_batch or concurrency
        self.instance = instance or services.coordinator_register(concurrency=concurrency)
        self.cancel = threading.Event()  # set to interrupt running runtimes
        self.wake = threading.Event()  # set when a result arrives or on stop
        self.results: queue.SimpleQueue[tuple[services.Claim, RuntimeResult]] = queue.SimpleQueue()
        self.in_flight: dict[int, services.Claim] = {}
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hive-runtime")
        self.housekeeping_interval = housekeeping_interval
        self.renew_interval = max(1.0, settings.HIVE["LEASE_SECONDS"] / 3)
        self._last_housekeeping = 0.0
        self._last_renew = time.monotonic()
        self.processed = 0

    # --- the tick ------------------------------------------------------------

    def tick(self) -> TickReport:
        started = time.monotonic()
        report = TickReport()
        if started - self._last_housekeeping >= self.housekeeping_interval:
            self._housekeeping(report)
            self._last_housekeeping = started
        report.applied = self._apply_results()
        if self.in_flight and time.monotonic() - self._last_renew >= self.renew_interval:
            services.tasks_lease_renew(instance=self.instance, task_ids=list(self.in_flight))
            self._last_renew = time.monotonic()
        if not self.cancel.is_set():
            report.claimed = self._claim()
        report.in_flight = len(self.in_flight)
        report.duration_ms = (time.monotonic() - started) * 1000
        return report

    def _housekeeping(self, report: TickReport) -> None:
        services.coordinator_heartbeat(instance=self.instance, processed=self.processed)
        self.processed = 0
        services.coordinators_mark_dead()
        report.reclaimed = services.tasks_reclaim_expired()
        report.expired_decisions = services.decisions_expire()

    def _claim(self) -> int:
        free = self.max_in_flight - len(self.in_flight)
        if free <= 0:
            return 0
        claims = services.tasks_claim(instance=self.instance, limit=free)
        for claim in claims:
            self.in_flight[claim.task_id] = claim
            future = self.pool.submit(run_claim, claim, self.cancel)
            future.add_done_callback(lambda f, c=claim: self._done(c, f))
        return len(claims)

    def _done(self, claim: services.Claim, future: Future) -> None:
        self.results.put((claim, future.result()))
        self.wake.set()

    def _apply_results(self) -> dict[str, int]:
        finished: list[services.Finished] = []
        while True:
            try:
                claim, result = self.results.get_nowait()
            except queue.Empty:
                break
            self.in_flight.pop(claim.task_id, None)
            finished.append(services.Finished(task_id=claim.task_id, attempt=claim.attempt, result=result))
        if not finished:
            return {}
        self.processed += len(finished)
        return services.task_results_apply(instance=self.instance, finished=finished)

    # --- the loop ------------------------------------------------------------

    def run(self, *, stop: threading.Event, interval: float = 0.5, on_tick=None) -> None:
        """Tick until `stop` is set; waits on events, never out a sleep."""
        while not stop.is_set():
            close_old_connections()
            try:
                report = self.tick()
            except Exception:  # log and live on; the next tick retries
                logger.exception("Coordinator tick failed")
                report = TickReport()
                stop.wait(interval)
            if on_tick is not None:
                on_tick(report)
            if not report.busy:
                self.wake.wait(interval)
            self.wake.clear()

    def drain(self, *, timeout: float) -> None:
        """Wait for in-flight work to finish and apply it (tests and --once)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            self.wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            self.wake.clear()
            self._apply_results()

    def shutdown(self, *, grace: float = 10.0, reason: str = "shutdown") -> int:
        """Stop claiming, let running work finish within `grace`, hand the rest back. Returns tasks handed back."""
        CoordinatorInstance.objects.filter(pk=self.instance.pk).update(status=CoordinatorInstance.Status.STOPPING)
        self.drain(timeout=grace)
        self.cancel.set()
        handed_back = 0
        if self.in_flight:
            handed_back = services.tasks_hand_back(
                instance=self.instance, task_ids=list(self.in_flight), reason=f"coordinator {reason}"
            )
            self.in_flight.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)
        # Results that arrived after hand-back are stale attempts; the fencing token rejects them.
        while not self.results.empty():
            self.results.get_nowait()
        services.coordinator_stop(instance=self.instance, reason=reason)
        return handed_back
