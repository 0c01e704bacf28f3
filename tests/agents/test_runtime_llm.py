import json
import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.runtimes import Outcome, RuntimeConfigError, TaskContext, build_runtime, validate_runtime_config
from agents.runtimes.llm import judge_reply


class FakeOpenAI:
    """What the fake endpoint answers next and what it was asked."""

    def __init__(self):
        self.status = 200
        self.body: bytes | None = None
        self.content = "Implemented the greeting."
        self.usage: dict | None = {"prompt_tokens": 1500, "completion_tokens": 500}
        self.delay_s = 0.0
        self.requests: list[dict] = []

    def reply(self) -> bytes:
        if self.body is not None:
            return self.body
        payload = {
            "id": "chatcmpl-1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.content}}],
        }
        if self.usage is not None:
            payload["usage"] = self.usage
        return json.dumps(payload).encode()


@pytest.fixture
def fake_llm():
    state = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            state.requests.append(
                {"path": self.path, "headers": dict(self.headers), "json": json.loads(self.rfile.read(length))}
            )
            time.sleep(state.delay_s)
            body = state.reply()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


def make_ctx(**overrides) -> TaskContext:
    fields = {
        "task_id": 7,
        "attempt": 1,
        "title": "Add greeting endpoint",
        "description": "GET /hello returns a greeting.",
        "role": "developer",
        "step": "implement",
        "pattern": "feature_delivery",
        "workspace": "/tmp/unused",
        "files": ("app/views.py",),
        "handoff_note": "Architect: keep it in app/views.py",
        "session_goal": "Ship the greeting service",
    }
    return TaskContext(**(fields | overrides))


def llm(fake: FakeOpenAI, **config):
    return build_runtime("llm", {"base_url": fake.base_url, "model": "hive-test", **config})


def test_success_counts_tokens_cost_and_sends_request(fake_llm, monkeypatch):
    monkeypatch.setenv("HIVE_TEST_LLM_KEY", "sk-test-123")
    runtime = llm(
        fake_llm,
        api_key_env="HIVE_TEST_LLM_KEY",
        input_price_per_1k="0.003",
        output_price_per_1k="0.015",
        temperature=0,
        max_tokens=256,
    )

    result = runtime.run(make_ctx())

    assert result.outcome is Outcome.SUCCESS
    assert result.error == ""
    assert result.summary == "Implemented the greeting."
    assert result.output == "Implemented the greeting."
    assert (result.tokens_in, result.tokens_out) == (1500, 500)
    assert result.cost_usd == Decimal("0.012000")
    assert result.simulated is False
    request = fake_llm.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    body = request["json"]
    assert body["model"] == "hive-test"
    assert (body["temperature"], body["max_tokens"]) == (0, 256)
    assert [message["role"] for message in body["messages"]] == ["system", "user"]
    assert "developer" in body["messages"][0]["content"]
    user = body["messages"][1]["content"]
    for expected in ["Add greeting endpoint", "GET /hello", "app/views.py", "Architect: keep it", "Ship the greeting"]:
        assert expected in user


def test_no_auth_when_api_key_env_is_empty(fake_llm):
    result = llm(fake_llm).run(make_ctx())

    assert result.outcome is Outcome.SUCCESS
    assert "Authorization" not in fake_llm.requests[0]["headers"]


def test_missing_usage_is_zero_tokens(fake_llm):
    fake_llm.usage = None

    result = llm(fake_llm, input_price_per_1k="1").run(make_ctx())

    assert result.outcome is Outcome.SUCCESS
    assert (result.tokens_in, result.tokens_out, result.cost_usd) == (0, 0, Decimal("0"))


@pytest.mark.parametrize(
    ("content", "outcome"),
    [
        ("Looks good.\nVERDICT: APPROVED", Outcome.SUCCESS),
        ("Please rename x.\nverdict: changes_requested", Outcome.CHANGES_REQUESTED),
        ("Fine overall.\n**VERDICT:** Changes Requested", Outcome.CHANGES_REQUESTED),
        ('Summary done.\n```json\n{"verdict": "approved", "notes": []}\n```', Outcome.SUCCESS),
        ('{"verdict": "changes_requested"}', Outcome.CHANGES_REQUESTED),
        ("I think it is fine.", Outcome.FAILURE),
    ],
)
def test_reviewer_verdict(fake_llm, content, outcome):
    fake_llm.content = content

    result = llm(fake_llm).run(make_ctx(role="reviewer", step="review", round=2))

    assert result.outcome is outcome
    system = fake_llm.requests[0]["json"]["messages"][0]["content"]
    assert "VERDICT: APPROVED" in system


def test_reviewer_summary_names_the_verdict(fake_llm):
    fake_llm.content = "Rename the helper.\nVERDICT: CHANGES_REQUESTED"

    result = llm(fake_llm).run(make_ctx(role="reviewer", step="review", round=2))

    assert result.summary == "changes requested on round 2: Rename the helper."


def test_tester_result_fail_is_failure():
    ctx = make_ctx(role="tester", step="test")

    assert judge_reply(ctx=ctx, content="2 tests fail.\nRESULT: FAIL")[0] is Outcome.FAILURE
    assert judge_reply(ctx=ctx, content="All green.\nRESULT: PASS")[0] is Outcome.SUCCESS
    # a developer quoting the marker is not judged by it
    assert judge_reply(ctx=make_ctx(), content="RESULT: FAIL")[0] is Outcome.SUCCESS


def test_dead_endpoint_fails_quickly():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = build_runtime("llm", {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "timeout": 5})

    started = time.monotonic()
    result = runtime.run(make_ctx())

    assert result.outcome is Outcome.FAILURE
    assert result.error.startswith(f"cannot connect to http://127.0.0.1:{port}/v1/chat/completions")
    assert time.monotonic() - started < 3


def test_http_500_is_failure_with_status_and_excerpt(fake_llm):
    fake_llm.status = 500
    fake_llm.body = b'{"error": {"message": "model overloaded"}}'

    result = llm(fake_llm).run(make_ctx())

    assert result.outcome is Outcome.FAILURE
    assert "HTTP 500" in result.error
    assert "model overloaded" in result.error


def test_non_json_reply_is_failure(fake_llm):
    fake_llm.body = b"<html>gateway</html>"

    result = llm(fake_llm).run(make_ctx())

    assert result.outcome is Outcome.FAILURE
    assert "not JSON" in result.error


def test_reply_without_choices_is_failure(fake_llm):
    fake_llm.body = b'{"object": "chat.completion"}'

    result = llm(fake_llm).run(make_ctx())

    assert result.outcome is Outcome.FAILURE
    assert "choices[0].message.content" in result.error


def test_missing_env_var_is_failure(fake_llm, monkeypatch):
    monkeypatch.delenv("HIVE_TEST_MISSING_KEY", raising=False)

    result = llm(fake_llm, api_key_env="HIVE_TEST_MISSING_KEY").run(make_ctx())

    assert result.outcome is Outcome.FAILURE
    assert result.error == "environment variable HIVE_TEST_MISSING_KEY is not set"
    assert fake_llm.requests == []


def test_slow_endpoint_times_out(fake_llm):
    fake_llm.delay_s = 3

    result = llm(fake_llm, timeout=1).run(make_ctx())

    assert result.outcome is Outcome.FAILURE
    assert "timed out after 1 s" in result.error


def test_cancel_returns_at_once(fake_llm):
    fake_llm.delay_s = 3
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()

    started = time.monotonic()
    result = llm(fake_llm).run(make_ctx(), cancel=cancel)

    assert result.error == "cancelled"
    assert time.monotonic() - started < 1.5


def test_output_is_bounded(fake_llm):
    fake_llm.content = "start\n" + "y" * 100_000 + "\nend"

    result = llm(fake_llm).run(make_ctx())

    assert "bytes omitted" in result.output
    assert len(result.output.encode()) < 17 * 1024
    assert result.output.startswith("start") and result.output.endswith("end")


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": "m"}, "base_url"),
        ({"base_url": "ftp://host/v1", "model": "m"}, "base_url"),
        ({"base_url": "127.0.0.1:8000", "model": "m"}, "base_url"),
        ({"base_url": "http://h/v1"}, "model"),
        ({"base_url": "http://h/v1", "model": "m", "api_key": "sk-oops"}, "api_key"),
        ({"base_url": "http://h/v1", "model": "m", "api_key_env": "not a name"}, "api_key_env"),
        ({"base_url": "http://h/v1", "model": "m", "temperature": 5}, "temperature"),
        ({"base_url": "http://h/v1", "model": "m", "max_tokens": 0}, "max_tokens"),
        ({"base_url": "http://h/v1", "model": "m", "input_price_per_1k": "cheap"}, "input_price_per_1k"),
        ({"base_url": "http://h/v1", "model": "m", "output_price_per_1k": "-1"}, "output_price_per_1k"),
    ],
)
def test_config_errors_name_the_field(config, field):
    with pytest.raises(RuntimeConfigError) as excinfo:
        validate_runtime_config("llm", config)

    assert field in excinfo.value.errors


def test_config_defaults():
    config = validate_runtime_config("llm", {"base_url": "http://127.0.0.1:8000/v1/", "model": "m"})

    assert config["base_url"] == "http://127.0.0.1:8000/v1"
    assert (config["timeout"], config["temperature"], config["max_tokens"]) == (120, 0.2, 2048)
    assert config["input_price_per_1k"] == config["output_price_per_1k"] == "0"
    assert config["api_key_env"] == ""
    json.dumps(config)


@pytest.mark.parametrize("base_url", ["http://[", "http://[::1", "https://[zz]/v1"])
def test_a_malformed_base_url_is_a_config_error(base_url):
    with pytest.raises(RuntimeConfigError) as exc:
        validate_runtime_config("llm", {"base_url": base_url, "model": "m"})
    assert "base_url" in exc.value.errors
