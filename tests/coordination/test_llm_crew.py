"""An LLM-driven reviewer through the whole coordinator, against a fake endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coordination.models import CoordinationEvent, Decision, Task, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from tests.conftest import scripted


@pytest.fixture
def chat_server():
    """An OpenAI-compatible endpoint: approves on the second review, reports usage."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            verdict = "CHANGES_REQUESTED" if len(seen) == 1 else "APPROVED"
            reply = json.dumps(
                {
                    "choices": [{"message": {"role": "assistant", "content": f"Looks at it.\nVERDICT: {verdict}"}}],
                    "usage": {"prompt_tokens": 1200, "completion_tokens": 300},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()
    server.server_close()


def llm_reviewer(base_url: str) -> MemberSpec:
    return MemberSpec(
        role="reviewer",
        runtime="llm",
        runtime_config={
            "base_url": base_url,
            "model": "review-model",
            "api_key_env": "HIVE_TEST_LLM_KEY",
            "input_price_per_1k": "0.003",
            "output_price_per_1k": "0.015",
        },
    )


def test_llm_reviewer_drives_the_review_loop_and_records_tokens_and_cost(chat_server, workspace, drive, monkeypatch):
    base_url, seen = chat_server
    monkeypatch.setenv("HIVE_TEST_LLM_KEY", "sk-test-123")
    session = team_spawn(
        name="LLM crew", workspace=str(workspace), members=[scripted("developer"), llm_reviewer(base_url)]
    )
    workflow = work_submit(session=session, work=WorkSpec(title="Add search", pattern="code_review_cycle"))
    drive()

    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    reviews = list(workflow.tasks.filter(step="review").order_by("round"))
    assert [t.outcome for t in reviews] == ["changes_requested", "success"]
    for task in reviews:
        assert (task.tokens_in, task.tokens_out) == (1200, 300)
        assert task.cost_usd == Decimal("0.008100")  # 1.2 × 0.003 + 0.3 × 0.015
        assert not task.simulated
    assert len(seen) == 2
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["auth"] == "Bearer sk-test-123"
    assert seen[0]["body"]["model"] == "review-model"
    completed = CoordinationEvent.objects.filter(workflow=workflow, type="task_completed", task__in=reviews)
    assert {e.business_impact["tokens"] for e in completed} == {1500}


def test_dead_endpoint_is_a_recorded_failure_not_a_crash(workspace, drive, settings, monkeypatch):
    settings.HIVE = {**settings.HIVE, "MAX_ATTEMPTS": 2, "RETRY_BACKOFF": 0}
    monkeypatch.setenv("HIVE_TEST_LLM_KEY", "sk-test-123")
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    session = team_spawn(name="Dead", workspace=str(workspace), members=[scripted("developer"), llm_reviewer(dead)])
    workflow = work_submit(session=session, work=WorkSpec(title="Offline", pattern="code_review_cycle"))
    drive()

    review = workflow.tasks.get(step="review")
    assert review.status == Task.Status.BLOCKED and review.attempt == 2
    assert review.error  # a readable reason, e.g. connection refused
    assert CoordinationEvent.objects.filter(task=review, type="task_failed").count() == 2
    assert CoordinationEvent.objects.filter(task=review, type="task_retry_scheduled").count() == 1
    decision = Decision.objects.get(task=review)
    assert decision.kind == "retries_exhausted"
    assert review.error[:40] in CoordinationEvent.objects.filter(type="task_failed").last().message
