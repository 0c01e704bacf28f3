"""Secrets never reach events or logs: variables a runtime config names, token secrets, passwords."""

from __future__ import annotations

import json
import logging
import sys

from agents.redaction import REDACTED, redact, redact_text
from coordination.access.services import token_issue
from coordination.engine import Engine
from coordination.models import CoordinationEvent, Task, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from tests.conftest import run_until_quiet

DEPLOY_KEY = "dk-7f3a9c41e2b8-deploy"  # the value of a variable the config allows through (env_allow)
CONFIG_TOKEN = "ct-55d0a1f9c3e7b2aa"  # a value the config sets itself (env)
SCRIPT = (
    "import os; print('deploying with', os.environ['HIVE_TEST_DEPLOY_KEY'], 'and', os.environ['DEPLOY_TOKEN']); "
    "print('Authorization: Token ' + os.environ['HIVE_TEST_DEPLOY_KEY'] * 2)"
)


def event_text() -> str:
    rows = CoordinationEvent.objects.values_list(
        "message", "participants", "collaboration_data", "business_impact", "actor", "actor_token"
    )
    return "\n".join(json.dumps(row, default=str) for row in rows)


def test_no_secret_in_events_or_logs_when_a_runtime_config_names_it(db, workspace, monkeypatch, caplog, operator):
    monkeypatch.setenv("HIVE_TEST_DEPLOY_KEY", DEPLOY_KEY)
    caplog.set_level(logging.DEBUG)
    deployer = MemberSpec(
        role="developer",
        name="deployer",
        runtime="command",
        runtime_config={
            "argv": [sys.executable, "-c", SCRIPT],
            "env_allow": ["PATH", "HIVE_TEST_DEPLOY_KEY"],
            "env": {"DEPLOY_TOKEN": CONFIG_TOKEN},
        },
    )
    session = team_spawn(name="Deploy crew", workspace=str(workspace), members=[deployer])
    workflow = work_submit(session=session, work=WorkSpec(title="Deploy", pattern="conflict_resolution"))
    engine = Engine(concurrency=1, housekeeping_interval=0)
    try:
        run_until_quiet(engine)
    finally:
        engine.shutdown(grace=0)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED, Task.objects.get(workflow=workflow).error
    # Code that logs a secret by mistake: the line is kept, the secret is not.
    logging.getLogger("coordination.deploy").warning("deploy key %s, token %s", DEPLOY_KEY, CONFIG_TOKEN)
    secret = token_issue(user=operator, name="CI bot", scope="operate")[1]
    logging.getLogger("coordination.access").info("issued %s", secret)

    events, logs = event_text(), caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for value in (DEPLOY_KEY, CONFIG_TOKEN, secret):
        assert value not in events
        assert value not in logs
    # The program's output did reach the events, with the secrets taken out.
    assert "deploying with [redacted] and [redacted]" in events
    assert "deploy key [redacted], token [redacted]" in logs


def test_passwords_and_credentials_in_data_and_text_are_redacted():
    data = {"user": "ana", "password": "hunter2-hunter2", "tokens_in": 120, "nested": [{"api_key": "k-123"}]}
    assert redact(data) == {"user": "ana", "password": REDACTED, "tokens_in": 120, "nested": [{"api_key": REDACTED}]}
    header = "Authorization: Token 0123456789abcdef0123456789abcdef"
    assert redact_text(header) == f"Authorization: Token {REDACTED}"
    assert redact_text("login password=s3cret!x failed") == f"login password={REDACTED} failed"
    assert redact_text("API token “CI bot” issued") == "API token “CI bot” issued"


def test_short_and_default_values_stay_readable(monkeypatch):
    from agents.redaction import config_secrets

    monkeypatch.setenv("HIVE_TEST_SHORT", "abc")
    config = {"env_allow": ["PATH", "HOME", "HIVE_TEST_SHORT"], "env": {"MODE": "fast", "LONG": "x" * 20}}
    assert config_secrets(config) == {"x" * 20}
