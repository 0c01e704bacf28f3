"""API clients: anonymous, a viewer signed in with a session, an operator with a token."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.conftest import issue_token


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Hashing is not under test here; the default hasher costs ~0.3 s per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_read_cache(settings):
    # Each test starts cold, and figures stay fresh for the whole test: a background refresh
    # thread would not see the test's uncommitted rows.
    settings.HIVE_API_CACHE_SECONDS = 600
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def no_validation_processes(monkeypatch):
    """API tests (schemathesis among them) may start sandbox validation runs: record them, start no process.

    The real launch is tested in tests/metrics/test_validate_hive.py."""
    launched: list[list[str]] = []

    def launch(argv, *, log):
        launched.append(argv)
        return 0

    monkeypatch.setattr("metrics.validation.records.launch_process", launch)
    return launched


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def viewer_client(viewer):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(viewer)
    return client


@pytest.fixture
def operator_token(operator):
    return issue_token(operator)


@pytest.fixture
def operator_client(operator_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {operator_token}")
    return client
