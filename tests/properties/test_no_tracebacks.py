"""Property-based: generated team files and API bodies never end in a traceback or a 500.

Values are drawn near the real shapes (the keys the inputs know, plausible and hostile
values: wrong types, NUL, huge and non-finite numbers, deep nesting, invalid UTF-8)
so that most examples reach the validators rather than the first type check.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from coordination.models import Decision
from coordination.teamfile import MEMBER_KEYS, TEAM_KEYS, WORK_KEYS

pytestmark = pytest.mark.django_db

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

hostile_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "a\x00b", "x; touch INJECTED", "{title}", "NaN", "sNaN", "1e400", "-1", "developer"]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 32, 33, -100, 100, 101, 10000, 10001]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(hostile_text, st.sampled_from(["argv", "summaries"])), children, max_size=4),
    ),
    max_leaves=12,
)


def near(keys: set[str], extra: dict[str, st.SearchStrategy] | None = None) -> st.SearchStrategy:
    """Objects whose keys are mostly the known ones, with values of any kind (or a fitting one)."""
    fitting = extra or {}
    values = {key: st.one_of(json_values, fitting.get(key, json_values)) for key in sorted(keys)}
    return st.fixed_dictionaries({}, optional=values).flatmap(
        lambda known: st.dictionaries(hostile_text, json_values, max_size=1).map(lambda unknown: {**unknown, **known})
    )


runtime_configs = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"argv": st.lists(hostile_text, max_size=4)}),
    st.fixed_dictionaries({"argv": st.just(["sh", "-c", "echo {title}"])}),
    st.fixed_dictionaries({"base_url": hostile_text, "model": hostile_text}),
    st.fixed_dictionaries({"duration_s": json_values, "summaries": json_values}),
)
members = near(
    MEMBER_KEYS,
    {
        "role": st.sampled_from(["developer", "tester", "wizard"]),
        "runtime": st.sampled_from(["scripted", "command", "llm", "shell"]),
        "runtime_config": runtime_configs,
        "concurrency": numbers,
    },
)
works = near(
    WORK_KEYS, {"title": hostile_text, "priority": numbers, "estimate_hours": st.one_of(numbers, hostile_text)}
)
team_bodies = near(
    TEAM_KEYS,
    {
        "name": hostile_text,
        "workspace": st.sampled_from(["", "relative", "/etc", "/tmp/../etc", "a\x00b"]),
        "members": st.lists(members, max_size=3),
        "backlog": st.lists(works, max_size=2),
    },
)


def deep(depth: int) -> str:
    return '{"name": "deep", "members": ' + "[" * depth + "]" * depth + "}"


raw_files = st.one_of(
    team_bodies.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=40),
    st.sampled_from([deep(5000).encode(), b'{"name": "\xff"}', b"[]", b"{", b'{"name": 1e400}']),
)


@pytest.fixture
def isolated_workspaces(settings, tmp_path):
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOT": tmp_path / "new", "WORKSPACE_ROOTS": [tmp_path]}
    return tmp_path


@PROPERTY_SETTINGS
@given(content=raw_files)
def test_spawn_team_answers_every_file_with_a_message(isolated_workspaces, content):
    path = isolated_workspaces / "team.json"
    path.write_bytes(content)
    try:
        call_command("spawn_team", str(path), stdout=open("/dev/null", "w"))  # noqa: SIM115
    except CommandError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)


@pytest.fixture
def client(operator, isolated_workspaces):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(operator)
    return client


def send(client, method: str, url: str, body) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    response = getattr(client, method)(url, data, content_type="application/json")
    assert response.status_code < 500, (url, body, response.content[:500])
    assert response["Content-Type"].startswith("application/json")


@PROPERTY_SETTINGS
@given(body=st.one_of(team_bodies, st.just(deep(5000)), json_values))
def test_spawn_bodies_never_fail_the_server(client, body):
    send(client, "post", "/api/coordination/spawn", body)


@PROPERTY_SETTINGS
@given(body=st.one_of(members.map(lambda m: {**m, "session": 1}), members), patch=members)
def test_agent_bodies_never_fail_the_server(client, crew, body, patch):
    if "session" in body:
        body["session"] = crew.pk
    send(client, "post", "/api/agents", body)
    agent = crew.agents.order_by("id").first()
    send(client, "patch", f"/api/agents/{agent.pk}", patch)


@PROPERTY_SETTINGS
@given(body=works, session=st.one_of(st.just("crew"), json_values))
def test_task_bodies_never_fail_the_server(client, crew, body, session):
    send(client, "post", "/api/tasks", {**body, "session": crew.pk if session == "crew" else session})


@PROPERTY_SETTINGS
@given(body=near({"option", "comment"}, {"option": st.sampled_from(["approve", "reject", ""])}))
def test_decision_answers_never_fail_the_server(client, crew, body):
    decision = Decision.objects.create(
        session=crew,
        kind=Decision.Kind.OTHER,
        question="Go?",
        options=[{"key": "approve", "label": "Approve"}, {"key": "reject", "label": "Reject"}],
        default_option="reject",
        deadline=timezone.now() + timedelta(hours=1),
    )
    send(client, "post", f"/api/decisions/{decision.pk}/answer", body)
