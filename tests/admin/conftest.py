import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def forget_cached_switches():
    """Waffle caches switches; a switch flipped in a rolled-back test must not leak into the next one."""
    yield
    cache.clear()
