"""The figures every dashboard reads, through one short-lived cache: the API and the console share them.

Each read is `coordination.api.cache.cached_read` under one key per window, so the JSON
API and the console overview (and its live refreshes) serve the same computation instead
of each recomputing the aggregates; the long windows read hourly rollups plus the
current hour (metrics.rollups).
"""

from __future__ import annotations

from typing import Any

from coordination.api.cache import WINDOW_SCALE, cached_read

from . import selectors
from .models import ValueAssumptions


def coordination_metrics(window: str) -> dict[str, Any]:
    """selectors.coordination_metrics(window) as JSON-ready data, cached."""
    return cached_read(
        f"metrics:{window}", lambda: selectors.coordination_metrics(window=window), scale=WINDOW_SCALE[window]
    )


def business_value(window: str) -> dict[str, Any]:
    """selectors.business_value(window) as JSON-ready data, cached; an edit of the assumptions shows at once."""
    edited = ValueAssumptions.objects.values_list("updated_at", flat=True).first()
    key = f"value:{window}:{edited.timestamp() if edited else 0}"
    return cached_read(key, lambda: selectors.business_value(window=window), scale=WINDOW_SCALE[window])


def throughput_series(window: str, buckets: int = 24) -> list[dict[str, Any]]:
    data = cached_read(
        f"series:{window}:{buckets}",
        lambda: {"series": selectors.throughput_series(window=window, buckets=buckets)},
        scale=WINDOW_SCALE[window],
    )
    return data["series"]


def cost_by_role(window: str) -> list[dict[str, Any]]:
    data = cached_read(
        f"cost-by-role:{window}",
        lambda: {"roles": selectors.cost_by_role(window=window)},
        scale=WINDOW_SCALE[window],
    )
    return data["roles"]
