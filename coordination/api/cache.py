"""A short-lived cache for the aggregate reads dashboards poll (status, metrics, business value).

Every client of a web process shares one computation per window for
settings.HIVE_API_CACHE_SECONDS (default 2 s; 0 turns it off), so many open
dashboards cost the database one query set per interval instead of one each.
Figures are never older than that; business value is also keyed by the
assumptions' last change, so an edit shows at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache

DEFAULT_SECONDS = 2.0


def jsonable(value: Any) -> Any:
    """Selector output as the API renders it: decimals as strings (like DecimalField), datetimes as ISO."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def cached_read(key: str, compute: Callable[[], dict]) -> dict:
    seconds = float(getattr(settings, "HIVE_API_CACHE_SECONDS", DEFAULT_SECONDS))
    if seconds <= 0:
        return jsonable(compute())
    full_key = f"hive:api:{key}"
    data = cache.get(full_key)
    if data is None:
        data = jsonable(compute())
        cache.set(full_key, data, seconds)
    return data
