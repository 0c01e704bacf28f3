"""The aider preset for real: aider from PyPI, in its own virtual environment, against a local stub model.

The virtual environment is kept between runs under ~/.cache/agent-hive/aider-<version>
(HIVE_AIDER_VENV overrides it), so only the first run pays the install. aider is not a
requirement of Agent Hive; it is what a team would install for its developer agents.
"""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agents.runtimes import Outcome, TaskContext, build_runtime

AIDER_VERSION = "0.86.2"
INSTALL_TIMEOUT_S = 900

EDIT = """Here is the change.

app/views.py
```python
<<<<<<< SEARCH
def hello():
    return "hi"
=======
def hello():
    return "hello from aider"
>>>>>>> REPLACE
```
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def aider_bin() -> Path:
    venv = Path(os.environ.get("HIVE_AIDER_VENV") or Path.home() / ".cache" / "agent-hive" / f"aider-{AIDER_VERSION}")
    aider = venv / "bin" / "aider"
    if not aider.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"aider-chat=={AIDER_VERSION}"],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    return aider.parent


@pytest.fixture
def stub_model():
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            requests.append({"path": self.path, "body": body})
            raw = json.dumps(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "stub",
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": EDIT}}
                    ],
                    "usage": {"prompt_tokens": 1200, "completion_tokens": 60, "total_tokens": 1260},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    server.shutdown()
    server.server_close()


def test_aider_edits_the_file_in_the_attempt_worktree(aider_bin, stub_model, tmp_path, monkeypatch):
    base_url, requests = stub_model
    worktree = tmp_path / "worktree"
    (worktree / "app").mkdir(parents=True)
    (worktree / "app" / "views.py").write_text('def hello():\n    return "hi"\n')
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PATH", f"{aider_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    runtime = build_runtime(
        "command", {"preset": "aider", "model": "openai/stub", "base_url": base_url, "timeout": 600}
    )
    context = TaskContext(
        task_id=11,
        attempt=1,
        title="Greet from aider",
        description="hello() returns 'hello from aider'.",
        role="developer",
        step="implement",
        pattern="feature_delivery",
        workspace=str(worktree),
        files=("app/views.py",),
        agent_name="aider-dev",
    )

    result = runtime.run(context)

    assert result.outcome is Outcome.SUCCESS, f"{result.error}\n{result.output}"
    assert (worktree / "app" / "views.py").read_text() == 'def hello():\n    return "hello from aider"\n'
    assert requests and requests[0]["path"].endswith("/chat/completions")
    prompt = json.dumps(requests[0]["body"]["messages"])
    assert "Greet from aider" in prompt and 'return \\"hi\\"' in prompt
    assert result.tokens_in > 0 and result.tokens_out > 0
