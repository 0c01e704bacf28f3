"""Prometheus export: a collector that reads the selectors at scrape time.

Nothing is kept in process-global counters, so every web process reports the
same figures (they come from the database) and several processes can be scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordination.selectors import coordination_status

from . import selectors, slo
from .models import CoordinationObjective, ValidationRun

HEALTH_VALUES = {"ok": 0, "degraded": 1, "down": 2}


def _gauge(name: str, doc: str, value, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    if value is not None:
        if labels:
            family.add_metric(list(labels.values()), float(value))
        else:
            family.add_metric([], float(value))
    return family


class HiveCollector(Collector):
    """Key figures: queue, agents, daemons, decisions, the last hour's work and the last day's value."""

    def __init__(self, *, window: str = "1h", value_window: str = "24h"):
        self.window = window
        self.value_window = value_window

    def collect(self) -> Iterator[Metric]:
        status = coordination_status()
        yield _gauge(
            "hive_health", "Overall health: 0 ok, 1 degraded, 2 down.", HEALTH_VALUES[status["health"]["status"]]
        )
        yield _gauge("hive_queue_depth", "Tasks ready and waiting for an agent.", status["queue_depth"])
        yield _gauge("hive_tasks_in_flight", "Tasks running now.", status["tasks_in_flight"])
        yield _gauge("hive_tasks_blocked", "Tasks blocked on a decision.", status["tasks_blocked"])
        yield _gauge("hive_decisions_open", "Open decisions waiting for a human.", status["open_decisions"])
        yield _gauge("hive_decisions_overdue", "Open decisions past their deadline.", status["overdue_decisions"])
        yield _gauge(
            "hive_daemons_alive",
            "Coordinator daemons with a fresh heartbeat.",
            sum(d["alive"] for d in status["daemons"]),
        )
        by_role = GaugeMetricFamily("hive_agents_by_role", "Agents of live sessions by role.", labels=["role"])
        for role, n in status["agents_by_role"].items():
            by_role.add_metric([role], n)
        yield by_role
        by_status = GaugeMetricFamily("hive_agents_by_status", "Agents of live sessions by status.", labels=["status"])
        for agent_status, n in status["agents_by_status"].items():
            by_status.add_metric([agent_status], n)
        yield by_status

        metrics = selectors.coordination_metrics(window=self.window)
        w = {"window": self.window}
        yield _gauge(
            "hive_tasks_completed", "Tasks completed in the window.", metrics["throughput"]["tasks_completed"], w
        )
        yield _gauge("hive_tasks_failed", "Tasks failed in the window.", metrics["throughput"]["tasks_failed"], w)
        yield _gauge(
            "hive_workflows_completed",
            "Workflows completed in the window.",
            metrics["throughput"]["workflows_completed"],
            w,
        )
        yield _gauge(
            "hive_coordination_success_ratio",
            "Finished workflows completed without human rescue (absent when none finished).",
            metrics["coordination_success_rate"],
            w,
        )
        yield _gauge("hive_rework_ratio", "Tasks with round > 1 or attempt > 1.", metrics["rework_rate"], w)
        for kind in ("workflow", "task"):
            for q in ("p50", "p95"):
                yield _gauge(
                    f"hive_{kind}_cycle_seconds_{q}",
                    f"{kind.capitalize()} cycle time {q} in the window.",
                    metrics["cycle_time"][kind][q],
                    w,
                )
        yield _gauge("hive_handoff_latency_seconds_p50", "Handoff latency p50.", metrics["handoff_latency"]["p50"], w)
        yield _gauge("hive_cost_usd", "Runtime-reported cost in the window.", metrics["totals"]["cost_usd"], w)
        tokens = metrics["totals"]["tokens_in"] + metrics["totals"]["tokens_out"]
        yield _gauge("hive_tokens", "Tokens used in the window.", tokens, w)
        yield _gauge(
            "hive_simulated_ratio",
            "Share of completed tasks produced by scripted (simulated) runtimes.",
            metrics["simulated_share"]["tasks_completed"],
            w,
        )

        yield from self._objective()

        value = selectors.business_value(window=self.value_window)
        v = {"window": self.value_window}
        yield _gauge(
            "hive_hours_saved", "Human hours saved (estimates minus human review time).", value["hours_saved"], v
        )
        yield _gauge("hive_crew_hours", "Hours the crew worked.", value["crew_hours"], v)
        yield _gauge("hive_net_value", f"Net value in {value['currency']} (value minus cost).", value["net_value"], v)
        yield _gauge("hive_productivity_gain", "Human hours replaced per crew hour.", value["productivity_gain"], v)

    def _objective(self) -> Iterator[Metric]:
        """The coordination objective, the live figure it judges, and the last validation run."""
        objective = CoordinationObjective.current()
        live = slo.window_success(objective=objective, now=timezone.now())
        judged = live["ratio"] is not None and live["finished"] >= objective.min_finished_workflows
        w = {"window": f"{objective.window_minutes}m"}
        yield _gauge(
            "hive_coordination_success_objective_ratio",
            "Objective: share of finished workflows to deliver without a human (edited in the admin).",
            objective.target_ratio,
        )
        yield _gauge(
            "hive_coordination_success_rolling_ratio",
            "Finished workflows delivered without a human over the objective's window "
            "(absent while fewer than its minimum finished).",
            live["ratio"] if judged else None,
            w,
        )
        yield _gauge(
            "hive_coordination_success_rolling_finished",
            "Workflows finished in the objective's window.",
            live["finished"],
            w,
        )
        yield _gauge(
            "hive_slo_breached",
            "1 while the coordination objective is breached, as last judged by a daemon.",
            int(objective.state == CoordinationObjective.State.BREACHED),
        )
        last = ValidationRun.objects.exclude(status=ValidationRun.Status.RUNNING).order_by("-finished_at").first()
        if last is not None:
            yield _gauge(
                "hive_validation_last_passed",
                "1 when the last finished validation run passed, else 0.",
                int(last.status == ValidationRun.Status.PASSED),
            )
            yield _gauge(
                "hive_validation_last_finished_timestamp_seconds",
                "When the last validation run finished.",
                last.finished_at.timestamp(),
            )


def render() -> bytes:
    """The exposition text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HiveCollector())
    return generate_latest(registry)
