"""API rate limits: per token and per user, counted in fixed windows in the "throttle" cache.

DRF's SimpleRateThrottle keeps a list of every request time per client and rewrites it on
each request (a read-modify-write that grows with the limit and races across processes).
These count with one atomic increment per window instead (Redis INCR with REDIS_URL), which
costs the same at 10 or 10,000 requests a minute. Going over raises DRF's Throttled, which
the API's exception handler answers as 429 with Retry-After. When the counters cannot be
reached (Redis down), requests are served unlimited and a warning is logged once a minute:
a limit must never turn an outage of its store into failed API calls.
"""

from __future__ import annotations

import logging
import sys
import time

from django.core.cache import caches
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiToken

logger = logging.getLogger(__name__)
CACHE_ALIAS = "throttle"
WARN_EVERY_S = 60.0
_warned_at = float("-inf")


def _warn_unavailable() -> None:
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= WARN_EVERY_S:
        _warned_at = now
        exc = sys.exception()
        logger.warning(
            "API rate limit counters unavailable (%s: %s); serving requests unlimited", type(exc).__name__, exc
        )


class FixedWindowRateThrottle(SimpleRateThrottle):
    """Counts a client's requests per window of the rate's period ("1200/min": per minute)."""

    timer = time.time

    def get_rate(self) -> str | None:
        # Read at each request, not at import, so a changed setting applies (and tests can set it).
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def ident_for(self, request) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request, view) -> str | None:
        ident = self.ident_for(request)
        return None if ident is None else f"{self.scope}:{ident}"

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.window_ends = (window + 1) * self.duration
        self.now = now
        try:
            count = self._count(f"{key}:{window}")
        except Exception:  # the counter store is unreachable: serve rather than fail the request
            _warn_unavailable()
            return True
        return count <= self.num_requests

    def _count(self, window_key: str) -> int:
        cache = caches[CACHE_ALIAS]
        try:
            return cache.incr(window_key)
        except ValueError:  # the window's first request; add() loses to a concurrent first one
            return 1 if cache.add(window_key, 1, timeout=self.duration + 5) else cache.incr(window_key)

    def wait(self) -> float:
        """Seconds until the current window ends (the Retry-After)."""
        return max(1.0, self.window_ends - self.now)


class TokenRateThrottle(FixedWindowRateThrottle):
    """Each API token's requests (rate "token")."""

    scope = "token"

    def ident_for(self, request) -> str | None:
        # A digest prefix names the token without its secret; 128 bits cannot collide in practice.
        return request.auth.digest[:32] if isinstance(request.auth, ApiToken) else None


class UserRateThrottle(FixedWindowRateThrottle):
    """All of one user's requests, whatever the credential (rate "user"); anonymous ones are refused earlier."""

    scope = "user"

    def ident_for(self, request) -> str | None:
        user = request.user
        return str(user.pk) if user and user.is_authenticated else None
