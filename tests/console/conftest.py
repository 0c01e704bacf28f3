"""Console pages read the API's cached figures: each test starts cold and its figures stay fresh."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_read_cache(settings):
    # A background refresh thread would not see the test's uncommitted rows.
    settings.HIVE_API_CACHE_SECONDS = 600
    cache.clear()
    yield
    cache.clear()
