"""The llm runtime sees the code and changes it: real git in a temporary repository, a local stub endpoint."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.runtimes import Outcome, TaskContext, build_runtime
from agents.runtimes.edits import EditError, apply_edits, parse_edits


class Stub:
    """Answers each request with the next scripted reply (the last one repeats); records requests."""

    def __init__(self):
        self.replies: list[str] = ["ok"]
        self.stream = False
        self.requests: list[dict] = []

    def next_reply(self) -> str:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture
def stub():
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            state.requests.append(body)
            content = state.next_reply()
            if state.stream and body.get("stream"):
                self._sse(content)
                return
            raw = json.dumps(
                {
                    "choices": [{"message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _sse(self, content: str):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            pieces = [content[i : i + 7] for i in range(0, len(content), 7)]
            for piece in pieces:
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            usage = {"choices": [], "usage": {"prompt_tokens": 321, "completion_tokens": len(pieces)}}
            self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A worktree on an attempt branch, with one developer commit since the workflow's base."""
    path = tmp_path / "attempt"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "Test")
    (path / "app").mkdir()
    (path / "app" / "views.py").write_text('def hello():\n    return "hi"\n')
    (path / "lib").mkdir()
    (path / "lib" / "util.py").write_text("def shout(text):\n    return text.upper()\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "base")
    base = git(path, "rev-parse", "HEAD").strip()
    git(path, "checkout", "-qb", "hive/demo/t7-a1")
    (path / "app" / "views.py").write_text('def hello():\n    return "hello, world"\n')
    git(path, "commit", "-qam", "developer: greet properly")
    return path, base


def ctx(repo, base, **overrides) -> TaskContext:
    fields = {
        "task_id": 7,
        "attempt": 1,
        "title": "Greet properly",
        "description": "hello() returns a full greeting.",
        "role": "developer",
        "step": "implement",
        "pattern": "feature_delivery",
        "workspace": str(repo),
        "files": ("app/views.py",),
        "agent_name": "dev-1",
        "branch": "hive/demo/t7-a1",
        "base_sha": base,
    }
    return TaskContext(**(fields | overrides))


def runtime(stub, **config):
    return build_runtime("llm", {"base_url": stub.base_url, "model": "stub", **config})


EDIT = """I will add a farewell.

app/views.py
<<<<<<< SEARCH
def hello():
    return "hello, world"
=======
def hello():
    return "hello, world"


def bye():
    return "bye"
>>>>>>> REPLACE
"""


def test_review_prompt_carries_the_diff_lines(stub, repo):
    path, base = repo
    stub.replies = ["Fine.\nVERDICT: APPROVED"]

    result = runtime(stub).run(ctx(path, base, role="reviewer", step="review", files=()))

    assert result.outcome is Outcome.SUCCESS
    prompt = stub.requests[0]["messages"][1]["content"]
    assert '-    return "hi"' in prompt
    assert '+    return "hello, world"' in prompt


def test_developer_sees_declared_files_and_its_edit_is_committed_on_the_attempt_branch(stub, repo):
    path, base = repo
    stub.replies = [EDIT]
    before = git(path, "rev-parse", "HEAD").strip()

    result = runtime(stub).run(ctx(path, base))

    assert result.outcome is Outcome.SUCCESS, result.error
    prompt = stub.requests[0]["messages"][1]["content"]
    assert "### app/views.py" in prompt and 'return "hello, world"' in prompt
    assert "SEARCH" in stub.requests[0]["messages"][0]["content"]
    assert 'def bye():\n    return "bye"' in (path / "app" / "views.py").read_text()
    assert git(path, "rev-parse", "HEAD~1").strip() == before
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "hive/demo/t7-a1"
    assert git(path, "log", "-1", "--format=%an <%ae>").strip() == "dev-1 <dev-1@hive.local>"
    assert git(path, "status", "--porcelain") == ""
    assert result.artifacts == ["app/views.py"]
    assert "commit" in result.summary


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (EDIT.replace(">>>>>>> REPLACE\n", ""), "not closed"),
        (EDIT.replace('return "hello, world"\n=======', 'return "nope"\n======='), "not in app/views.py"),
        (EDIT.replace("app/views.py\n<<<", "../outside.py\n<<<"), "not a path inside the worktree"),
        (EDIT.replace("app/views.py\n<<<", ".git/config\n<<<"), "not a path inside the worktree"),
    ],
)
def test_a_bad_edit_fails_cleanly_and_nothing_is_written(stub, repo, reply, reason):
    path, base = repo
    two_edits = reply + "\nlib/util.py\n<<<<<<< SEARCH\n=======\nnew\n>>>>>>> REPLACE\n"
    stub.replies = [two_edits]
    head = git(path, "rev-parse", "HEAD").strip()

    result = runtime(stub).run(ctx(path, base))

    assert result.outcome is Outcome.FAILURE
    assert reason in result.error and result.error.startswith("edits not applied")
    assert git(path, "rev-parse", "HEAD").strip() == head
    assert git(path, "status", "--porcelain") == ""
    assert (result.tokens_in, result.tokens_out) == (100, 10)


def test_the_model_may_ask_to_read_files_and_each_call_is_counted(stub, repo):
    path, base = repo
    stub.replies = [
        "READ: lib/util.py",
        "lib/util.py\n<<<<<<< SEARCH\n    return text.upper()\n=======\n    return text.upper() + '!'\n"
        ">>>>>>> REPLACE\n",
    ]

    result = runtime(stub, input_price_per_1k="1").run(ctx(path, base))

    assert result.outcome is Outcome.SUCCESS, result.error
    assert len(stub.requests) == 2
    follow_up = stub.requests[1]["messages"][-1]["content"]
    assert "### lib/util.py" in follow_up and "text.upper()" in follow_up
    assert (result.tokens_in, result.tokens_out) == (200, 20)
    assert str(result.cost_usd) == "0.200000"
    assert "+ '!'" in (path / "lib" / "util.py").read_text()


def test_context_over_budget_is_cut_with_a_marker(stub, repo):
    path, base = repo
    (path / "app" / "views.py").write_text("x = 1\n" * 2000)
    git(path, "commit", "-qam", "big")
    stub.replies = ["Fine.\nVERDICT: APPROVED"]

    runtime(stub, context_tokens=200).run(ctx(path, base, role="reviewer", step="review"))

    prompt = stub.requests[0]["messages"][1]["content"]
    assert "omitted: the context budget is 200 tokens" in prompt
    assert len(prompt) < 2000


def test_a_streamed_answer_reaches_live_output_piece_by_piece(stub, repo):
    path, base = repo
    stub.stream = True
    stub.replies = ["Looked at it closely.\nVERDICT: APPROVED"]
    pieces: list[str] = []

    result = runtime(stub).run(ctx(path, base, role="reviewer", step="review", on_output=pieces.append))

    assert stub.requests[0]["stream"] is True
    assert len(pieces) > 3 and "".join(pieces) == "Looked at it closely.\nVERDICT: APPROVED"
    assert result.outcome is Outcome.SUCCESS
    assert result.tokens_in == 321 and result.tokens_out == len(pieces)


def test_stream_false_sends_a_plain_request(stub, repo):
    path, base = repo
    runtime(stub, stream=False).run(ctx(path, base, role="tester", step="test"))

    assert "stream" not in stub.requests[0]


def test_outside_a_git_worktree_no_repository_context_is_sent(stub, tmp_path):
    runtime(stub).run(ctx(tmp_path, "", role="reviewer", step="review"))

    assert "## " not in stub.requests[0]["messages"][1]["content"]


def test_edits_parse_and_apply_all_or_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    edits = parse_edits(
        "a.txt\n<<<<<<< SEARCH\none\n=======\nONE\n>>>>>>> REPLACE\n"
        "```\nb.txt\n<<<<<<< SEARCH\n=======\nnew file\n>>>>>>> REPLACE\n```\n"
    )
    assert [edit.path for edit in edits] == ["a.txt", "b.txt"]

    assert apply_edits(tmp_path, edits) == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "ONE\ntwo\n"
    assert (tmp_path / "b.txt").read_text() == "new file\n"

    ambiguous = parse_edits("a.txt\n<<<<<<< SEARCH\n\n=======\nx\n>>>>>>> REPLACE\n")
    with pytest.raises(EditError, match="already exists|matches"):
        apply_edits(tmp_path, ambiguous)
    assert (tmp_path / "a.txt").read_text() == "ONE\ntwo\n"


def test_config_refuses_bad_values():
    with pytest.raises(Exception, match="context_tokens"):
        build_runtime("llm", {"base_url": "http://127.0.0.1:1/v1", "model": "m", "context_tokens": -1})
    with pytest.raises(Exception, match="stream"):
        build_runtime("llm", {"base_url": "http://127.0.0.1:1/v1", "model": "m", "stream": "yes"})
