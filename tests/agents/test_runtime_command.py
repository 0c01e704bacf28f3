import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agents.runtimes import (
    Outcome,
    RuntimeConfigError,
    TaskContext,
    build_runtime,
    validate_runtime_config,
)
from agents.runtimes.command import BoundedCapture

PY = sys.executable
# writes its argv (minus the interpreter) and a few env vars to argv.json in the cwd
DUMP_ARGV = (
    "import json, os, sys; "
    "json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, open('argv.json', 'w', encoding='utf-8'))"
)
HOSTILE = ["; rm -rf ~", "$(touch pwned)", "`touch pwned2`", "&& echo hacked > x", "'quoted' \"double\" \\ | > <"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def make_ctx(*, workspace: Path, **overrides) -> TaskContext:
    fields = {
        "task_id": 42,
        "attempt": 1,
        "title": "Add greeting",
        "description": "Write hello.txt",
        "role": "developer",
        "step": "implement",
        "pattern": "feature_delivery",
        "workspace": str(workspace),
    }
    return TaskContext(**(fields | overrides))


def read_dump(workspace: Path) -> dict:
    return json.loads((workspace / "argv.json").read_text(encoding="utf-8"))


def test_success_writes_file_and_records_exit_code(workspace):
    script = "import sys; open('hello.txt', 'w').write(sys.argv[1]); print('wrote hello.txt')"
    runtime = build_runtime("command", {"argv": [PY, "-c", script, "{title}"]})

    result = runtime.run(make_ctx(workspace=workspace))

    assert result.outcome is Outcome.SUCCESS
    assert result.exit_code == 0
    assert result.simulated is False
    assert (workspace / "hello.txt").read_text() == "Add greeting"
    assert result.summary.startswith("wrote hello.txt (exit 0 in ")
    assert "wrote hello.txt" in result.output
    assert result.as_dict()["outcome"] == "success"


def test_non_zero_exit_is_failure_with_exit_code(workspace):
    script = "import sys; print('compiling'); print('error: tests broke', file=sys.stderr); sys.exit(3)"
    runtime = build_runtime("command", {"argv": [PY, "-c", script]})

    result = runtime.run(make_ctx(workspace=workspace))

    assert result.outcome is Outcome.FAILURE
    assert result.exit_code == 3
    assert result.error == ""
    assert result.summary.startswith("error: tests broke (exit 3")
    assert "compiling" in result.output and "tests broke" in result.output


def test_failure_outcome_can_request_changes(workspace):
    config = {"argv": [PY, "-c", "raise SystemExit(1)"], "failure_outcome": "changes_requested"}

    result = build_runtime("command", config).run(make_ctx(workspace=workspace, role="reviewer", step="review"))

    assert result.outcome is Outcome.CHANGES_REQUESTED
    assert result.exit_code == 1


def test_hostile_task_text_stays_one_literal_argument(workspace):
    ctx = make_ctx(
        workspace=workspace,
        title=HOSTILE[0],
        description=HOSTILE[1],
        handoff_note=HOSTILE[2],
        agent_name=HOSTILE[3],
    )
    argv = [PY, "-c", DUMP_ARGV, "{title}", "{description}", "{handoff_note}", "{agent_name}", "--msg={title}!"]
    runtime = build_runtime("command", {"argv": argv})

    result = runtime.run(ctx)

    assert result.outcome is Outcome.SUCCESS, result.output
    dump = read_dump(workspace)
    assert dump["argv"] == HOSTILE[:4] + [f"--msg={HOSTILE[0]}!"]
    assert dump["env"]["HIVE_HANDOFF_NOTE"] == HOSTILE[2]
    assert not (workspace / "pwned").exists()
    assert not (workspace / "pwned2").exists()
    assert not (workspace / "x").exists()


def test_quotes_and_braces_in_task_text_are_not_reinterpreted(workspace):
    title = "{description} {title.__class__} {0} %s \\n"
    runtime = build_runtime("command", {"argv": [PY, "-c", DUMP_ARGV, "{title}", "{{title}}"]})

    runtime.run(make_ctx(workspace=workspace, title=title))

    assert read_dump(workspace)["argv"] == [title, "{title}"]


def test_files_placeholder_expands_to_one_element_per_file(workspace):
    runtime = build_runtime("command", {"argv": [PY, "-c", DUMP_ARGV, "--", "{files}", "end"]})

    runtime.run(make_ctx(workspace=workspace, files=("src/a b.py", "$(touch pwned).py")))
    assert read_dump(workspace)["argv"] == ["--", "src/a b.py", "$(touch pwned).py", "end"]

    runtime.run(make_ctx(workspace=workspace, files=()))
    assert read_dump(workspace)["argv"] == ["--", "end"]


def test_timeout_kills_child_and_grandchildren(workspace):
    # the shell backgrounds a grandchild, records its pid, then waits on it
    script = "sleep 30 & echo $! > grandchild.pid; wait"
    runtime = build_runtime("command", {"argv": ["sh", "-c", script], "timeout": 1})

    started = time.monotonic()
    result = runtime.run(make_ctx(workspace=workspace))
    elapsed = time.monotonic() - started

    assert result.outcome is Outcome.FAILURE
    assert result.error == "timed out after 1 s"
    assert elapsed < 5
    grandchild = int((workspace / "grandchild.pid").read_text())
    assert not process_running(grandchild)


def test_cancel_event_stops_the_child(workspace):
    runtime = build_runtime("command", {"argv": ["sleep", "30"]})
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()

    started = time.monotonic()
    result = runtime.run(make_ctx(workspace=workspace), cancel=cancel)

    assert result.outcome is Outcome.FAILURE
    assert result.error == "cancelled"
    assert time.monotonic() - started < 4


def test_cancel_before_start_runs_nothing(workspace):
    cancel = threading.Event()
    cancel.set()
    runtime = build_runtime("command", {"argv": [PY, "-c", DUMP_ARGV]})

    result = runtime.run(make_ctx(workspace=workspace), cancel=cancel)

    assert result.error == "cancelled"
    assert not (workspace / "argv.json").exists()


def test_missing_binary_is_a_clean_failure(workspace):
    runtime = build_runtime("command", {"argv": ["hive-no-such-binary-xyz", "--help"]})

    result = runtime.run(make_ctx(workspace=workspace))

    assert result.outcome is Outcome.FAILURE
    assert result.error == "executable not found: hive-no-such-binary-xyz"
    assert result.exit_code is None


def test_missing_workspace_is_a_clean_failure(tmp_path):
    runtime = build_runtime("command", {"argv": ["true"]})

    result = runtime.run(make_ctx(workspace=tmp_path / "gone"))

    assert result.outcome is Outcome.FAILURE
    assert result.error.startswith("workspace not found")


def test_output_is_bounded_head_and_tail(workspace):
    script = "import sys; sys.stdout.write('HEAD' + 'x' * 5_000_000 + 'TAIL'); sys.stdout.flush()"
    runtime = build_runtime("command", {"argv": [PY, "-c", script], "max_output_bytes": 4096})

    result = runtime.run(make_ctx(workspace=workspace))

    assert result.outcome is Outcome.SUCCESS
    marker = f"\n… {5_000_008 - 4096} bytes omitted …\n"
    assert marker in result.output
    assert len(result.output.encode()) <= 4096 + len(marker.encode())
    assert result.output.startswith("HEAD") and result.output.endswith("TAIL")


def test_bounded_capture_keeps_head_and_tail_across_chunks():
    capture = BoundedCapture(limit=10)
    for chunk in [b"abc", b"defgh", b"ijklmnop", b"qrst"]:
        capture.write(chunk)

    assert capture.text() == "abcde\n… 10 bytes omitted …\npqrst"


def test_env_is_allow_listed(workspace, monkeypatch):
    monkeypatch.setenv("HIVE_TEST_SECRET_TOKEN", "s3cret")
    monkeypatch.setenv("SHARED_SETTING", "visible")
    config = {"argv": [PY, "-c", DUMP_ARGV], "env_allow": ["PATH", "SHARED_SETTING"], "env": {"MODE": "ci"}}

    build_runtime("command", config).run(make_ctx(workspace=workspace, round=2, step="test", role="tester"))

    env = read_dump(workspace)["env"]
    assert "HIVE_TEST_SECRET_TOKEN" not in env
    assert "s3cret" not in env.values()
    assert env["SHARED_SETTING"] == "visible"
    assert env["MODE"] == "ci"
    assert env["HIVE_TASK_ID"] == "42"
    assert env["HIVE_ATTEMPT"] == "1"
    assert env["HIVE_ROLE"] == "tester"
    assert env["HIVE_STEP"] == "test"
    assert env["HIVE_ROUND"] == "2"
    assert env["HIVE_HANDOFF_NOTE"] == ""


def test_json_line_verdict_decides_outcome_and_numbers(workspace):
    verdict = {
        "outcome": "changes_requested",
        "summary": "two issues found",
        "artifacts": ["review.md"],
        "tokens_in": 120,
        "tokens_out": 30,
        "cost_usd": "0.0125",
    }
    script = f"print('reviewing'); print({json.dumps(verdict)!r}); print('done')"
    runtime = build_runtime("command", {"argv": [PY, "-c", script], "verdict": "json_line"})

    result = runtime.run(make_ctx(workspace=workspace, role="reviewer", step="review"))

    assert result.outcome is Outcome.CHANGES_REQUESTED
    assert result.summary == "two issues found"
    assert result.artifacts == ["review.md"]
    assert (result.tokens_in, result.tokens_out) == (120, 30)
    assert str(result.cost_usd) == "0.0125"
    assert result.as_dict()["cost_usd"] == "0.0125"


def test_json_line_falls_back_to_exit_code(workspace):
    runtime = build_runtime("command", {"argv": [PY, "-c", "print('no verdict'); exit(2)"], "verdict": "json_line"})

    result = runtime.run(make_ctx(workspace=workspace))

    assert result.outcome is Outcome.FAILURE
    assert result.exit_code == 2


def test_cwd_inside_workspace(workspace):
    (workspace / "sub").mkdir()
    runtime = build_runtime("command", {"argv": [PY, "-c", DUMP_ARGV], "cwd": "sub"})

    assert runtime.run(make_ctx(workspace=workspace)).outcome is Outcome.SUCCESS
    assert (workspace / "sub" / "argv.json").exists()


def test_cwd_symlink_escape_is_refused_at_run_time(workspace, tmp_path):
    (workspace / "out").symlink_to(tmp_path)
    runtime = build_runtime("command", {"argv": ["true"], "cwd": "out"})

    result = runtime.run(make_ctx(workspace=workspace))

    assert result.outcome is Outcome.FAILURE
    assert "leaves the workspace" in result.error


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "argv"),
        ({"argv": []}, "argv"),
        ({"argv": "echo hi"}, "argv"),
        ({"argv": ["echo", "{secret}"]}, "argv"),
        ({"argv": ["echo", "{title.__class__}x{nope}"]}, "argv"),
        ({"argv": ["{title}"]}, "argv"),
        ({"argv": ["echo", "--files={files}"]}, "argv"),
        ({"argv": ["true"], "cwd": "/etc"}, "cwd"),
        ({"argv": ["true"], "cwd": "../outside"}, "cwd"),
        ({"argv": ["true"], "cwd": "a/../../b"}, "cwd"),
        ({"argv": ["true"], "timeout": 0}, "timeout"),
        ({"argv": ["true"], "timeout": "10"}, "timeout"),
        ({"argv": ["true"], "max_output_bytes": 10}, "max_output_bytes"),
        ({"argv": ["true"], "env_allow": ["BAD NAME"]}, "env_allow"),
        ({"argv": ["true"], "env": {"HIVE_TASK_ID": "1"}}, "env"),
        ({"argv": ["true"], "env": {"X": 1}}, "env"),
        ({"argv": ["true"], "success_exit_codes": []}, "success_exit_codes"),
        ({"argv": ["true"], "verdict": "vibes"}, "verdict"),
        ({"argv": ["true"], "failure_outcome": "success"}, "failure_outcome"),
        ({"argv": ["true"], "shell": True}, "shell"),
        ({"argv": ["true"], "simulated": "yes"}, "simulated"),
    ],
)
def test_config_errors_name_the_field(config, field):
    with pytest.raises(RuntimeConfigError) as excinfo:
        validate_runtime_config("command", config)

    assert field in excinfo.value.errors
    assert field in str(excinfo.value)


def test_config_defaults_are_filled():
    config = validate_runtime_config("command", {"argv": ["{workspace}/run.sh", "{files}"]})

    assert config["timeout"] == 600
    assert config["max_output_bytes"] == 65536
    assert config["success_exit_codes"] == [0]
    assert config["verdict"] == "exit_code"
    assert "PATH" in config["env_allow"]
    assert config["simulated"] is False


def test_simulated_flag_labels_results_of_a_scripted_stand_in(workspace):
    real = build_runtime("command", {"argv": [PY, "-c", "print('real work')"]})
    stand_in = build_runtime("command", {"argv": [PY, "-c", "print('canned patch')"], "simulated": True})
    failing_stand_in = build_runtime("command", {"argv": [PY, "-c", "raise SystemExit(3)"], "simulated": True})

    assert real.run(make_ctx(workspace=workspace)).simulated is False
    done = stand_in.run(make_ctx(workspace=workspace))
    assert done.outcome == Outcome.SUCCESS
    assert done.simulated is True
    failed = failing_stand_in.run(make_ctx(workspace=workspace))
    assert failed.outcome == Outcome.FAILURE
    assert failed.simulated is True
    missing = build_runtime("command", {"argv": ["/nonexistent/tool"], "simulated": True})
    assert missing.run(make_ctx(workspace=workspace)).simulated is True


def test_unknown_runtime_kind():
    with pytest.raises(RuntimeConfigError) as excinfo:
        validate_runtime_config("shell", {})

    assert "unknown runtime 'shell'" in excinfo.value.errors["runtime"]


def process_running(pid: int) -> bool:
    """True while pid exists and is not a zombie awaiting reaping."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_process_running_sees_this_process():
    assert process_running(os.getpid())


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", "echo {title} > out.txt"],
        ["bash", "-lc", "make {step}"],
        ["/usr/bin/env", "LANG=C", "python3.11", "-c", "print('{description}')"],
        ["node", "--eval", "console.log(`{title}`)"],
        ["perl", "-e", "print q({handoff_note})"],
        ["ruby", "-e", "puts '{title}'"],
        ["php", "-r", "echo '{title}';"],
    ],
)
def test_placeholders_inside_a_script_argument_are_refused(argv):
    with pytest.raises(RuntimeConfigError) as exc:
        build_runtime("command", {"argv": argv})
    message = exc.value.errors["argv"]
    assert "run as code" in message and "HIVE_TITLE" in message


def test_task_text_cannot_become_a_shell_command(workspace):
    """The README's promise: a title of `x; touch INJECTED` never runs, whatever the argv."""
    hostile = "x; touch INJECTED"
    with pytest.raises(RuntimeConfigError, match="HIVE_TITLE"):
        build_runtime("command", {"argv": ["sh", "-c", "echo {title} > out.txt"]})
    # What the message points to: the script reads the title from the environment, as data.
    runtime = build_runtime("command", {"argv": ["sh", "-c", 'echo "$HIVE_TITLE" > out.txt']})
    result = runtime.run(make_ctx(workspace=workspace, title=hostile))
    assert result.outcome == Outcome.SUCCESS
    assert (workspace / "out.txt").read_text() == hostile + "\n"
    assert not (workspace / "INJECTED").exists()
    # A placeholder as its own argument after the script stays one literal argument too.
    runtime = build_runtime("command", {"argv": ["sh", "-c", 'echo "$1" > out2.txt', "sh", "{title}"]})
    runtime.run(make_ctx(workspace=workspace, title=hostile))
    assert (workspace / "out2.txt").read_text() == hostile + "\n"
    assert not (workspace / "INJECTED").exists()
