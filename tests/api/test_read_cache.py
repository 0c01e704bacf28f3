"""The read cache serves fresh figures, then stale ones while exactly one refresh runs."""

from __future__ import annotations

import threading
from decimal import Decimal

from coordination.api import cache as read_cache


def test_fresh_then_stale_while_one_refresh_runs(settings, monkeypatch):
    settings.HIVE_API_CACHE_SECONDS = 5
    clock = [1000.0]
    monkeypatch.setattr(read_cache.time, "time", lambda: clock[0])
    release = threading.Event()
    calls = []

    def compute():
        calls.append(len(calls))
        if len(calls) > 1:
            release.wait(5)
        return {"n": len(calls), "cost": Decimal("1.50")}

    assert read_cache.cached_read("t", compute) == {"n": 1, "cost": "1.50"}
    assert read_cache.cached_read("t", compute) == {"n": 1, "cost": "1.50"}
    assert len(calls) == 1
    clock[0] += 6  # stale: served as is, one background refresh starts
    assert read_cache.cached_read("t", compute)["n"] == 1
    assert read_cache.cached_read("t", compute)["n"] == 1
    release.set()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.daemon and thread.name.startswith("Thread"):
            thread.join(timeout=5)
    assert len(calls) == 2
    assert read_cache.cached_read("t", compute)["n"] == 2


def test_zero_seconds_always_recomputes(settings):
    settings.HIVE_API_CACHE_SECONDS = 0
    calls = []
    for _ in range(3):
        read_cache.cached_read("z", lambda: calls.append(1) or {})
    assert len(calls) == 3
