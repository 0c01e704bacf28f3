"""Property-based run of every operation of the OpenAPI schema as an operator.

Checks: no 5xx, status codes, content types and bodies conform to the schema.
The schema is built by drf-spectacular at import time (a served /api/schema/
needs a signed-in user, and the database only exists inside a test) and is
bound to Django's WSGI app; test_served_schema_is_the_one_tested proves the
served document is that same schema. The schema names the workspace roots a spawn
request may use; the run's root is a temporary directory, removed at the end.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
import schemathesis.specs.openapi.checks
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS as CHECKS_REGISTRY

pytestmark = pytest.mark.django_db


# Spawned workspaces go here; the published schema (see coordination/api/schema.py) says so.
WORKSPACE_ROOT = Path(tempfile.mkdtemp(prefix="hive-schemathesis-"))


def _schema_document() -> dict:
    with override_settings(HIVE={**django_settings.HIVE, "WORKSPACE_ROOTS": [WORKSPACE_ROOT]}):
        generated = SchemaGenerator().get_schema(request=None, public=True)
        return json.loads(OpenApiJsonRenderer().render(generated))


# Every check schemathesis has: no server error; status codes, headers, content types and bodies
# as documented; schema-valid input accepted and invalid input refused; auth and methods as declared.
CHECKS = CHECKS_REGISTRY.get_all()
assert len(CHECKS) >= 10, [check.__name__ for check in CHECKS]

# Operations whose parameters have a rule between them (reports: end on or after start, dates only with
# period=custom); schema-valid input may break it, so "schema-valid input is accepted" does not apply.
CROSS_FIELD_RULES = {"GET /api/reports/delivery", "GET /api/reports/delivery.csv"}
CHECKS_BUT_ACCEPTANCE = [check for check in CHECKS if check.__name__ != "positive_data_acceptance"]
assert len(CHECKS_BUT_ACCEPTANCE) == len(CHECKS) - 1


def _without_repositories(document: dict) -> dict:
    """Spawn without a repository: whether a value names a git repository depends on the disk, which no schema
    can say, and target_branch and verify need one. tests/api/test_delivery_inputs.py covers them with real git."""
    for name in ("SpawnInputRequest", "SessionInputRequest"):
        properties = document["components"]["schemas"].get(name, {}).get("properties", {})
        if "repository" in properties:
            properties["repository"]["maxLength"] = 0
            properties["target_branch"]["maxLength"] = 0
            properties["verify"]["maxItems"] = 0
    return document


DOCUMENT = _schema_document()
schema = schemathesis.openapi.from_dict(_without_repositories(json.loads(json.dumps(DOCUMENT))))
schema.app = get_wsgi_application()
schema.location = "/api/schema/"


def test_served_schema_is_the_one_tested(operator_client):
    served = operator_client.get("/api/schema/?format=json")
    assert served.status_code == 200
    assert json.loads(served.content)["paths"].keys() == DOCUMENT["paths"].keys()
    assert len(DOCUMENT["paths"]) >= 25


@pytest.fixture(scope="module", autouse=True)
def remove_workspace_root():
    yield
    shutil.rmtree(WORKSPACE_ROOT, ignore_errors=True)


@pytest.fixture
def workspace_root(settings):
    roots = [WORKSPACE_ROOT, *settings.HIVE["WORKSPACE_ROOTS"]]
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOT": WORKSPACE_ROOT, "WORKSPACE_ROOTS": roots}


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: the WSGI handler must not close the test transaction's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case, operator_token, crew, workspace_root, keep_test_connection):
    headers = {"Authorization": f"Token {operator_token}"}
    if f"{case.method} {case.path}" not in CROSS_FIELD_RULES:
        case.call_and_validate(headers=headers, checks=CHECKS)
        return
    # A rule across parameters (an end before the start) is beyond what a schema can say: every other check
    # still holds, and a 400 there must name the parameter.
    response = case.call_and_validate(headers=headers, checks=CHECKS_BUT_ACCEPTANCE)
    if response.status_code == 400:
        assert set(response.json().get("errors", response.json())) <= {"period", "start", "end", "session", "table"}
