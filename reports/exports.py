"""CSV and JSON exports of a report: the deliveries, the headline figures and the cost per agent."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from .figures import headline_figures

TABLES = ("deliveries", "figures", "cost_by_agent", "decisions")
DELIVERY_COLUMNS = (
    "id",
    "title",
    "session",
    "pattern",
    "delivered_at",
    "estimate_hours",
    "crew_hours",
    "cost_usd",
    "tokens",
    "review_rounds",
    "test_rounds",
    "tasks",
    "branch",
    "merge_commit",
    "simulated",
)
AGENT_COLUMNS = ("agent_id", "agent", "role", "tasks", "tokens_in", "tokens_out", "cost_usd", "simulated")
DECISION_COLUMNS = ("id", "kind", "question", "answer", "answered_by", "created_at", "answered_at", "wait_seconds")


def report_csv(report: dict[str, Any], *, table: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if table == "figures":
        writer.writerow(("figure", "label", "value", "formula", "sources"))
        for figure in headline_figures(report):
            sources = " ".join(f"{kind}:{ident}" for kind, ids in figure["sources"].items() for ident in ids)
            writer.writerow((figure["key"], figure["label"], _cell(figure["value"]), figure["formula"], sources))
        return out.getvalue()
    columns, rows = {
        "deliveries": (DELIVERY_COLUMNS, report["deliveries"]),
        "cost_by_agent": (AGENT_COLUMNS, report["cost_by_agent"]),
        "decisions": (DECISION_COLUMNS, report["decisions"]["rows"]),
    }[table]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in columns])
    return out.getvalue()


def report_json(report: dict[str, Any]) -> str:
    return json.dumps({**report, "figures": headline_figures(report)}, cls=DjangoJSONEncoder, indent=2)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A spreadsheet runs a cell starting with = + - @ as a formula; text from agents must stay text.
    return "'" + text if text[:1] in {"=", "+", "-", "@"} and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
