"""API rate limits: per token and per user, 429 with Retry-After in the API's error shape; probes exempt."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from coordination.access import throttling
from coordination.access.throttling import FixedWindowRateThrottle
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

STATUS = "/api/coordination/status"


@pytest.fixture
def rates(settings):
    def set_rates(*, token=None, user=None):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"token": token, "user": user}}

    return set_rates


@pytest.fixture
def clock(monkeypatch):
    """The throttles' clock, set by the test: 50 s into a minute."""
    now = {"t": 1_000_000 * 60 + 50.0}
    monkeypatch.setattr(FixedWindowRateThrottle, "timer", lambda self: now["t"])
    return now


def get(client, secret, url=STATUS):
    return client.get(url, HTTP_AUTHORIZATION=f"Token {secret}")


def test_over_a_tokens_limit_is_429_with_retry_after_in_the_error_shape(operator, anon_client, rates, clock):
    rates(token="3/min")
    first, second = issue_token(operator, name="first"), issue_token(operator, name="second")

    assert [get(anon_client, first).status_code for _ in range(3)] == [200, 200, 200]
    refused = get(anon_client, first)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "10"  # the minute's window ends in 10 s
    body = refused.json()
    assert body == {
        "detail": "Too many requests: over this API's rate limit. Try again in 10 s.",
        "code": "throttled",
        "errors": {},
    }
    # The limit is the token's: the same user's other token still works.
    assert get(anon_client, second).status_code == 200

    clock["t"] += 10
    assert get(anon_client, first).status_code == 200


def test_a_users_limit_counts_every_credential(operator, anon_client, client, rates, clock):
    rates(user="4/min")
    first, second = issue_token(operator, name="first"), issue_token(operator, name="second")
    client.force_login(operator)

    assert [get(anon_client, first).status_code, get(anon_client, second).status_code] == [200, 200]
    assert [client.get(STATUS).status_code, client.get("/api/agents").status_code] == [200, 200]
    assert get(anon_client, first).status_code == 429
    assert client.get(STATUS).status_code == 429
    assert anon_client.get(STATUS).status_code == 401  # the anonymous are refused before any counting


def test_health_readiness_and_the_prometheus_scrape_are_never_limited(operator, anon_client, rates, clock):
    rates(token="1/min", user="1/min")
    secret = issue_token(operator)
    for _ in range(5):
        assert anon_client.get("/healthz").status_code == 200
        assert anon_client.get("/readyz").status_code in (200, 503)
        assert get(anon_client, secret, "/metrics").status_code == 200
    assert get(anon_client, secret).status_code == 200
    assert get(anon_client, secret).status_code == 429


def test_counters_live_where_every_web_process_sees_them(settings):
    # With Redis every daphne process counts against one limit; without it each process counts alone.
    assert type(caches["throttle"]).__name__ == ("RedisCache" if settings.REDIS_URL else "LocMemCache")


def test_unreachable_counters_let_requests_through_and_say_so(operator, anon_client, rates, settings, caplog):
    rates(token="1/min", user="1/min")
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        },
    }
    throttling._warned_at = float("-inf")
    secret = issue_token(operator)
    assert [get(anon_client, secret).status_code for _ in range(3)] == [200, 200, 200]
    warnings = [r for r in caplog.records if r.name == "coordination.access.throttling"]
    assert len(warnings) == 1 and warnings[0].exc_info is None  # one line, not a traceback per request
    assert warnings[0].getMessage().startswith("API rate limit counters unavailable (ConnectionError: ")
    assert warnings[0].getMessage().endswith("; serving requests unlimited")
