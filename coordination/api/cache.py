"""A short-lived cache for the aggregate reads dashboards poll (status, metrics, business value).

Every client of a web process shares one computation per window: figures are
fresh for settings.HIVE_API_CACHE_SECONDS (default 2 s; 0 turns the cache off).
Past that, the last figures are served while one background thread recomputes
them (refresh-ahead), so no request waits on a slow aggregate and concurrent
requests never recompute the same figures at once. Nothing older than
STALE_LIMIT is served. Business value is also keyed by the assumptions' last
change, so an edit shows at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections

DEFAULT_SECONDS = 2.0
# Seconds (at least; 3 × the freshness otherwise) after which figures are recomputed in the request.
STALE_LIMIT = 30.0
# Long windows change slowly relative to their size and cost the most to aggregate.
WINDOW_SCALE = {"1h": 1.0, "24h": 2.0, "7d": 5.0, "all": 15.0}
logger = logging.getLogger(__name__)
_lock = threading.Lock()
_refreshing: set[str] = set()


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


def _store(full_key: str, data: dict, seconds: float) -> None:
    cache.set(full_key, (time.time() + seconds, data), max(STALE_LIMIT, 3 * seconds))


def _refresh(full_key: str, compute: Callable[[], dict], seconds: float) -> None:
    try:
        _store(full_key, jsonable(compute()), seconds)
    except Exception:  # the stale figures stay; the next request tries again
        logger.warning("Refreshing %s failed", full_key, exc_info=True)
    finally:
        connections.close_all()  # this thread's connections only
        with _lock:
            _refreshing.discard(full_key)


def cached_read(key: str, compute: Callable[[], dict], *, scale: float = 1.0) -> dict:
    """`compute()` as JSON-ready data, fresh for HIVE_API_CACHE_SECONDS × `scale` seconds."""
    seconds = float(getattr(settings, "HIVE_API_CACHE_SECONDS", DEFAULT_SECONDS)) * scale
    if seconds <= 0:
        return jsonable(compute())
    full_key = f"hive:api:{key}"
    entry = cache.get(full_key)
    if entry is None:
        data = jsonable(compute())
        _store(full_key, data, seconds)
        return data
    fresh_until, data = entry
    if time.time() > fresh_until:
        with _lock:
            start = full_key not in _refreshing
            _refreshing.add(full_key)
        if start:
            threading.Thread(target=_refresh, args=(full_key, compute, seconds), daemon=True).start()
    return data
