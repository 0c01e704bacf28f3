"""The report's headline figures as one flat list — value, formula, sources — for the page, the CSV and the JSON."""

from __future__ import annotations

from typing import Any

SOURCE_PATHS = {
    "workflows": "/api/workflows/{}",
    "tasks": "/api/tasks/{}",
    "decisions": "/api/decisions/{}",
    "events": "/api/events?after={}&limit=1",
    "verification_runs": None,  # listed by id in the appendix; the API serves them per workflow
}


def headline_figures(report: dict[str, Any]) -> list[dict[str, Any]]:
    totals, value, quality, decisions = report["totals"], report["value"], report["quality"], report["decisions"]
    delivered = totals["sources"]["workflows"]
    formulas = {**report["formulas"], **value["formulas"]}
    return [
        _figure("deliveries", "Deliveries", totals["deliveries"], formulas["deliveries"], workflows=delivered),
        _figure(
            "estimate_hours",
            "Human estimate of the deliveries (h)",
            totals["estimate_hours"],
            "Σ human_estimate_hours of the deliveries",
            workflows=delivered,
        ),
        _figure("hours_saved", "Hours saved", value["hours_saved"], formulas["hours_saved"], workflows=delivered),
        _figure("crew_hours", "Crew hours (all work in the period)", value["crew_hours"], formulas["crew_hours"]),
        _figure("cost_usd", f"Cost ({value['currency']})", value["cost_usd"], formulas["cost_usd"]),
        _figure("value", f"Value ({value['currency']})", value["value"], formulas["value"]),
        _figure("net_value", f"Net value ({value['currency']})", value["net_value"], formulas["net_value"]),
        _figure(
            "productivity_gain", "Productivity gain (×)", value["productivity_gain"], formulas["productivity_gain"]
        ),
        _figure(
            "first_pass_approval",
            "First-pass review approval",
            quality["first_pass_approval"],
            formulas["first_pass_approval"],
            workflows=quality["sources"]["reviewed_deliveries"],
        ),
        _figure(
            "test_failures_caught",
            "Test failures caught before merge",
            quality["test_failures_caught"],
            formulas["test_failures_caught"],
            tasks=quality["sources"]["test_failures_caught"],
        ),
        _figure(
            "verification_failures",
            "Verification failures",
            quality["verification_failures"],
            formulas["verification_failures"],
            verification_runs=quality["sources"]["verification_failures"],
        ),
        _figure(
            "conflicts",
            "Merge conflicts",
            quality["conflicts"],
            formulas["conflicts"],
            events=quality["sources"]["conflict_events"],
        ),
        _figure(
            "decisions_answered",
            "Decisions answered",
            decisions["count"],
            "decisions answered in the period",
            decisions=[row["id"] for row in decisions["rows"]],
        ),
        _figure(
            "median_decision_wait_s",
            "Median decision wait (s)",
            decisions["median_wait_seconds"],
            formulas["decision_wait"],
            decisions=[row["id"] for row in decisions["rows"]],
        ),
    ]


def _figure(key: str, label: str, value: Any, formula: str, **sources: list[int]) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "value": value,
        "formula": formula,
        "sources": {kind: ids for kind, ids in sources.items()},
    }


def source_links(figure: dict[str, Any]) -> list[dict[str, str]]:
    links = []
    for kind, ids in figure["sources"].items():
        pattern = SOURCE_PATHS[kind]
        for ident in ids:
            url = pattern.format(ident - 1 if kind == "events" else ident) if pattern else ""
            links.append({"kind": kind, "id": str(ident), "url": url})
    return links
