"""The verdict of a validation run and its plain-text report.

Thresholds come from the command's options: coordination success at least `min_success`,
event completeness at least `min_events`; every exactly-once check must be exact (zero),
every kill's work must have been reclaimed and every fault asked for injected.
"""

from __future__ import annotations

from typing import Any

CHECKS = (
    "coordination_success",
    "duplicate_completions",
    "tasks_assigned_twice",
    "tasks_lost",
    "repository_duplicates",
    "event_completeness",
    "reclaim",
    "faults_injected",
    "daemons_stable",
)


def evaluate(figures: dict[str, Any], *, min_success: float, min_events: float) -> list[str]:
    """Names of the checks the figures fail (empty: the run passed)."""
    failed = []
    success = figures["coordination_success"]
    if success["ratio"] is None or success["ratio"] < min_success:
        failed.append("coordination_success")
    once = figures["exactly_once"]
    for name in ("duplicate_completions", "tasks_assigned_twice", "tasks_lost"):
        if once[name]:
            failed.append(name)
    if once["repository"].get("duplicated"):
        failed.append("repository_duplicates")
    events = figures["events"]
    if events["completeness"] is None or events["completeness"] < min_events or events["duplicates"]:
        failed.append("event_completeness")
    if any(kill.get("not_reclaimed") for kill in figures["reclaim"]):
        failed.append("reclaim")
    if figures["faults_not_injected"] or any(f.get("timed_out") for f in figures["faults"]):
        failed.append("faults_injected")
    if any(e["when"] == "running" for e in figures["unexpected_exits"]):
        failed.append("daemons_stable")
    return failed


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _s(value) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def render(*, figures: dict[str, Any], failed: list[str], options: dict[str, Any], status: str) -> str:
    """The report as text, one line per figure; a missed threshold is marked FAIL."""

    def mark(name: str) -> str:
        return "FAIL" if name in failed else "ok  "

    success = figures["coordination_success"]
    once = figures["exactly_once"]
    repo = once["repository"]
    events = figures["events"]
    latency = figures["handoff_latency"]
    lines = [
        f"Validation {status.upper()}: {figures['crew']}, {options['minutes']} min, "
        f"faults: {', '.join(options['faults']) or 'none'}, {options['daemons']} daemons",
        f"  database {options.get('database', '?')}, channel layer {options.get('channel_layer', '?')}"
        + (" (sandbox, deleted afterwards)" if options.get("sandbox") else ""),
        f"{mark('coordination_success')} coordination success {_pct(success['ratio'])} "
        f"({success['delivered_unaided']} of {success['denominator']} concluded workflows without a human; "
        f"threshold {_pct(options['min_success'])}; {success['running']} still running at the end)",
        f"{mark('duplicate_completions')} no task completed twice ({len(once['duplicate_completions'])} found)",
        f"{mark('tasks_assigned_twice')} no task assigned twice ({len(once['tasks_assigned_twice'])} found)",
        f"{mark('tasks_lost')} no task lost ({len(once['tasks_lost'])} found)",
        f"{mark('repository_duplicates')} no side effect twice in the repository "
        + (
            f"({len(repo['duplicated'])} duplicated; {repo['commits']} commits, "
            f"{repo['tasks_with_commits']} tasks committed, {repo['untraced_count']} untraced)"
            if repo.get("checked")
            else f"(not checked: {repo.get('reason')})"
        ),
        f"{mark('event_completeness')} events seen over the WebSocket {events['seen']} of {events['table']} "
        f"({_pct(events['completeness'])}; {events['duplicates']} twice, {events['out_of_order']} out of order, "
        f"{events['connects']} connection(s))",
        f"     handoff latency p50 {_s(latency['p50'])}, p95 {_s(latency['p95'])} ({latency['count']} handoffs)",
    ]
    for kill in figures["reclaim"]:
        reclaimed = kill.get("reclaimed_s")
        lines.append(
            f"{mark('reclaim')} kill -9 {kill.get('daemon')}: {kill.get('in_flight', 0)} task(s) in flight, "
            + (
                f"reclaimed after {_s(reclaimed)}, started again after {_s(kill.get('restarted_s'))}"
                if reclaimed is not None
                else kill.get("note", "NOT reclaimed")
            )
        )
    for fault in figures["faults"]:
        if fault["fault"] == "kill":
            continue
        details = ", ".join(f"{k} {v}" for k, v in fault.items() if k not in ("fault", "at_s", "injected_at"))
        lines.append(f"     {fault['fault']} at {fault['at_s']:.0f} s: {details or 'not injected'}")
    if figures["faults_not_injected"]:
        lines.append(f"FAIL faults not injected: {', '.join(figures['faults_not_injected'])}")
    for exit_ in figures["unexpected_exits"]:
        lines.append(f"{mark('daemons_stable')} daemon {exit_['daemon']} exited ({exit_['exit_code']}) {exit_['when']}")
    lines.append(f"     {figures['duration_s']:.0f} s in all; {figures['workflows']['submitted']} workflows submitted")
    return "\n".join(lines)
