"""Read-only metrics and business value, computed from recorded rows.

Every figure is an aggregate of task, workflow and decision rows in a time window;
nothing is a constant. The figures live along their seams:

- windows: named windows, shared expressions, rounding;
- percentiles: p50/p95 of durations and handoff latency;
- totals: the task totals several figures share;
- rates: coordination metrics and one agent's record;
- value: business value and its formulas;
- series: completions per bucket and spend per role.

This module keeps their public names importable from one place.
"""

from __future__ import annotations

from .percentiles import duration_percentiles, handoff_latency
from .rates import METRIC_DEFINITIONS, agent_performance, coordination_metrics
from .series import cost_by_role, throughput_series
from .value import BUSINESS_FORMULAS, business_value
from .windows import WINDOWS, window_bounds

__all__ = [
    "BUSINESS_FORMULAS",
    "METRIC_DEFINITIONS",
    "WINDOWS",
    "agent_performance",
    "business_value",
    "coordination_metrics",
    "cost_by_role",
    "duration_percentiles",
    "handoff_latency",
    "throughput_series",
    "window_bounds",
]
