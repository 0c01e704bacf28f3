"""Coding-agent CLI presets: config, argv, and reading each CLI's output.

Output samples follow each CLI's documented non-interactive output format; the claude-code
preset also runs for real against a stand-in program on PATH that prints such output.
"""

import json
import os
import stat
from decimal import Decimal

import pytest

from agents.runtimes import Outcome, PresetRuntime, RuntimeConfigError, TaskContext, build_runtime
from agents.runtimes.presets import PRESETS, parse_aider, parse_claude, parse_codex, parse_gemini, parse_opencode

CLAUDE_JSON = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 4120,
    "num_turns": 3,
    "result": "Added bye() to app/views.py.\n\nAll tests pass.",
    "session_id": "b1c2",
    "total_cost_usd": 0.0421,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 10000,
        "output_tokens": 350,
    },
}
CODEX_JSONL = "\n".join(
    json.dumps(event)
    for event in [
        {"type": "thread.started", "thread_id": "0199"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Planning**"}},
        {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": "Implemented bye()."}},
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 26549, "cached_input_tokens": 22272, "output_tokens": 1590},
        },
    ]
)
GEMINI_JSON = {
    "response": "Created app/bye.py with the farewell.",
    "stats": {
        "models": {"gemini-2.5-pro": {"api": {"totalRequests": 2}, "tokens": {"prompt": 24939, "candidates": 20}}}
    },
}
OPENCODE_JSONL = "\n".join(
    json.dumps(event)
    for event in [
        {"type": "step_start", "sessionID": "ses_1", "part": {"type": "step-start"}},
        {"type": "text", "sessionID": "ses_1", "part": {"type": "text", "text": "Done: bye() added."}},
        {"type": "step_finish", "part": {"type": "step-finish", "cost": 0.011, "tokens": {"input": 900, "output": 80}}},
        {"type": "step_finish", "part": {"type": "step-finish", "cost": 0.002, "tokens": {"input": 100, "output": 20}}},
    ]
)
AIDER_STDOUT = """Aider v0.86.2
Model: openai/stub with diff edit format
Applied edit to app/views.py
Tokens: 2.3k sent, 120 received. Cost: $0.0012 message, $0.0012 session.
"""


def ctx(workspace, **overrides):
    fields = dict(
        task_id=3,
        attempt=1,
        title="Add bye()",
        description="A farewell next to hello().",
        role="developer",
        step="implement",
        pattern="feature_delivery",
        workspace=str(workspace),
        files=("app/views.py",),
        agent_name="dev-1",
    )
    return TaskContext(**(fields | overrides))


def test_each_cli_output_gives_summary_tokens_and_cost():
    claude = parse_claude(json.dumps(CLAUDE_JSON))
    assert (claude.summary, claude.tokens_in, claude.tokens_out) == ("Added bye() to app/views.py.", 12012, 350)
    assert claude.cost_usd == Decimal("0.0421") and claude.error == ""

    codex = parse_codex(CODEX_JSONL)
    assert (codex.summary, codex.tokens_in, codex.tokens_out, codex.cost_usd) == (
        "Implemented bye().",
        26549,
        1590,
        None,
    )

    gemini = parse_gemini(json.dumps(GEMINI_JSON))
    assert (gemini.summary, gemini.tokens_in, gemini.tokens_out) == ("Created app/bye.py with the farewell.", 24939, 20)

    opencode = parse_opencode(OPENCODE_JSONL)
    assert (opencode.summary, opencode.tokens_in, opencode.tokens_out) == ("Done: bye() added.", 1000, 100)
    assert opencode.cost_usd == Decimal("0.013")

    aider = parse_aider(AIDER_STDOUT)
    assert (aider.tokens_in, aider.tokens_out, aider.cost_usd) == (2300, 120, Decimal("0.0012"))
    assert aider.summary == "Applied edit to app/views.py"


def test_errors_reported_by_the_cli_are_failures():
    assert parse_claude(json.dumps(CLAUDE_JSON | {"is_error": True, "result": "Credit balance too low"})).error
    assert "usage limit" in parse_codex('{"type":"turn.failed","error":{"message":"You hit your usage limit"}}').error
    assert parse_gemini('{"error": {"message": "quota"}}').error == "quota"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"preset": "cursor"}, "preset"),
        ({"preset": "aider", "model": "two words"}, "model"),
        ({"preset": "codex", "extra_args": ["rm -rf /"]}, "extra_args"),
        ({"preset": "codex", "extra_args": ["--x={title}"]}, "extra_args"),
        ({"preset": "codex", "env_allow": ["1BAD"]}, "env_allow"),
        ({"preset": "codex", "argv": ["sh"]}, "argv"),
        ({"preset": "aider", "model": "m", "base_url": "ftp://x"}, "base_url"),
    ],
)
def test_bad_preset_configs_name_the_field(config, field):
    with pytest.raises(RuntimeConfigError) as caught:
        build_runtime("command", config)
    assert field in caught.value.errors


def test_aider_argv_fills_the_prompt_and_files_as_arguments(tmp_path):
    runtime = build_runtime("command", {"preset": "aider", "model": "openai/stub", "base_url": "http://127.0.0.1:9/v1"})
    assert isinstance(runtime, PresetRuntime)
    argv = runtime.config["argv"]
    assert argv[:2] == ["aider", "--yes-always"] and "--no-git" in argv
    assert argv[argv.index("--model") + 1] == "openai/stub"
    assert argv[argv.index("--openai-api-base") + 1] == "http://127.0.0.1:9/v1"
    assert argv[-1] == "{files}" and "{title}" in argv[-2]
    assert "OPENAI_API_KEY" in runtime.config["env_allow"]


def test_every_preset_builds():
    for name in PRESETS:
        assert build_runtime("command", {"preset": name, "model": "m"}).config["argv"][0] == PRESETS[name].program


def test_claude_code_preset_runs_the_program_and_records_its_tokens_and_cost(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "claude"
    # A stand-in `claude` that records its argv, edits the worktree and prints claude's JSON result.
    program.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys, pathlib\n"
        "pathlib.Path('argv.json').write_text(json.dumps(sys.argv[1:]))\n"
        "pathlib.Path('app').mkdir(exist_ok=True)\n"
        "pathlib.Path('app/bye.py').write_text('def bye():\\n    return \"bye\"\\n')\n"
        f"print(json.dumps({CLAUDE_JSON!r}))\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    workspace = tmp_path / "work"
    workspace.mkdir()

    result = build_runtime("command", {"preset": "claude-code", "model": "sonnet"}).run(ctx(workspace))

    assert result.outcome is Outcome.SUCCESS, result.error
    assert result.summary == "Added bye() to app/views.py."
    assert (result.tokens_in, result.tokens_out, result.cost_usd) == (12012, 350, Decimal("0.0421"))
    assert result.simulated is False
    argv = json.loads((workspace / "argv.json").read_text())
    assert argv[0] == "-p" and argv[1].startswith("Task #3 (developer, implement step, round 1): Add bye()")
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert (workspace / "app" / "bye.py").exists()


def test_the_published_space_class_is_exactly_pythons_whitespace():
    import re

    from agents.runtimes.base import SPACE_CLASS

    spaces = re.compile(f"[{SPACE_CLASS}]")
    for code in range(0x110000):
        char = chr(code)
        assert bool(spaces.fullmatch(char)) == char.isspace(), hex(code)
