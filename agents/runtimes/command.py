"""Run a real program for a task, inside the session workspace, without a shell."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from .base import (
    NOT_BLANK_PATTERN,
    ConfigChecker,
    Outcome,
    Runtime,
    RuntimeResult,
    TaskContext,
    bound_text,
    clip,
    is_number,
    meaningful_lines,
    parse_decimal,
)
from .command_config import (
    check_argv,
    check_cwd,
    check_env,
    check_exit_codes,
    check_scripts,
    check_simulated,
    no_nul,
    render_argv,
)
from .process import (
    ATTEMPT_MARKER_ENV,
    BoundedCapture,
    attempt_marker,
    drain,
    popen_fenced,
    start_reader,
    wait_or_stop,
)

__all__ = ["BoundedCapture", "CommandRuntime", "child_env", "last_json_object", "render_argv"]

DEFAULT_ENV_ALLOW = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH"]
DEFAULT_TIMEOUT_S = 600
DEFAULT_MAX_OUTPUT_BYTES = 65536
ENV_TEXT_LIMIT = 32768


class CommandRuntime(Runtime):
    kind: ClassVar[str] = "command"
    # What validate_config accepts, for the published API schema (placeholders and scripts are checked beyond it).
    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["argv"],
        "properties": {
            "argv": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "pattern": NOT_BLANK_PATTERN},
                "description": "the program, then its arguments; {title}, {description}, {files}, … placeholders "
                "fill arguments, never the program nor a shell's or an interpreter's script",
            },
            "cwd": {"type": "string", "description": "relative to the workspace, without '..'"},
            "timeout": {"type": "number", "minimum": 1, "maximum": 86400},
            "max_output_bytes": {"type": "integer", "minimum": 1024, "maximum": 10 * 1024 * 1024},
            "env_allow": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
            "env": {
                "type": "object",
                "patternProperties": {"^(?!HIVE_)[A-Za-z_][A-Za-z0-9_]*$": {"type": "string"}},
                "additionalProperties": False,
            },
            "success_exit_codes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "integer", "minimum": 0, "maximum": 255},
            },
            "verdict": {"enum": ["exit_code", "json_line"]},
            "failure_outcome": {"enum": ["failure", "changes_requested", "conflict"]},
            "simulated": {"type": "boolean"},
        },
    }

    @classmethod
    def validate_config(cls, config: dict) -> dict:
        checker = ConfigChecker(
            config,
            allowed={
                "argv",
                "cwd",
                "timeout",
                "max_output_bytes",
                "env_allow",
                "env",
                "success_exit_codes",
                "verdict",
                "failure_outcome",
                "simulated",
            },
        )
        clean = {
            "argv": checker.text_list("argv", default=[], required=True),
            "cwd": checker.text("cwd", default=""),
            "timeout": checker.number("timeout", default=DEFAULT_TIMEOUT_S, minimum=1, maximum=86400),
            "max_output_bytes": checker.integer(
                "max_output_bytes", default=DEFAULT_MAX_OUTPUT_BYTES, minimum=1024, maximum=10 * 1024 * 1024
            ),
            "env_allow": checker.text_list("env_allow", default=DEFAULT_ENV_ALLOW),
            "env": checker.text_map("env", default={}),
            "success_exit_codes": check_exit_codes(checker),
            "verdict": checker.choice("verdict", default="exit_code", choices=["exit_code", "json_line"]),
            "failure_outcome": checker.choice(
                "failure_outcome",
                default=str(Outcome.FAILURE),
                choices=[str(Outcome.FAILURE), str(Outcome.CHANGES_REQUESTED), str(Outcome.CONFLICT)],
            ),
            # a scripted stand-in (demo patches, canned documents) is labelled simulated wherever it is shown
            "simulated": check_simulated(checker),
        }
        check_argv(checker, argv=clean["argv"])
        check_scripts(checker, argv=clean["argv"])
        check_cwd(checker, cwd=clean["cwd"])
        check_env(checker, env_allow=clean["env_allow"], env=clean["env"])
        checker.check()
        return clean

    def __init__(self, config: dict):
        super().__init__(config)
        self.simulated = bool(config.get("simulated", False))

    def run(self, ctx: TaskContext, *, cancel: threading.Event | None = None) -> RuntimeResult:
        started = time.monotonic()
        if cancel is not None and cancel.is_set():
            return self.failed(error="cancelled")
        workdir, problem = _resolve_workdir(workspace=ctx.workspace, cwd=self.config["cwd"])
        if problem:
            return self.failed(error=problem)
        argv = render_argv(template=self.config["argv"], ctx=ctx)
        env = child_env(ctx=ctx, env_allow=self.config["env_allow"], extra=self.config["env"])
        try:
            # its own process group, killed with the daemon: a reclaimed attempt cannot keep working
            proc = popen_fenced(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            return self.failed(error=f"executable not found: {argv[0]}")
        except PermissionError:
            return self.failed(error=f"permission denied running {argv[0]}")
        except OSError as exc:
            return self.failed(error=f"could not start {argv[0]}: {exc.strerror or exc}")
        if ctx.on_process_start is not None:
            ctx.on_process_start(proc.pid)
        return self._supervise(proc=proc, cancel=cancel, started=started)

    def _supervise(self, *, proc: subprocess.Popen, cancel: threading.Event | None, started: float) -> RuntimeResult:
        limit = self.config["max_output_bytes"]
        combined = BoundedCapture(limit=limit)
        stdout_tail = BoundedCapture(limit=limit)
        stderr_tail = BoundedCapture(limit=limit)
        readers = [
            start_reader(pipe=proc.stdout, sinks=(combined, stdout_tail)),
            start_reader(pipe=proc.stderr, sinks=(combined, stderr_tail)),
        ]
        stopped = wait_or_stop(proc=proc, cancel=cancel, timeout=self.config["timeout"])
        drain(proc=proc, readers=readers)
        duration = time.monotonic() - started
        output = combined.text()
        if stopped:
            return self.failed(error=stopped, duration_s=duration, output=output, exit_code=proc.returncode)
        return self._judge(
            exit_code=proc.returncode,
            output=output,
            stdout=stdout_tail.text(),
            stderr=stderr_tail.text(),
            duration=duration,
        )

    def _judge(self, *, exit_code: int, output: str, stdout: str, stderr: str, duration: float) -> RuntimeResult:
        succeeded = exit_code in self.config["success_exit_codes"]
        outcome = Outcome.SUCCESS if succeeded else Outcome(self.config["failure_outcome"])
        result = RuntimeResult(
            outcome=outcome,
            summary=_default_summary(
                succeeded=succeeded, exit_code=exit_code, stdout=stdout, stderr=stderr, duration=duration
            ),
            output=output,
            duration_s=round(duration, 3),
            exit_code=exit_code,
            simulated=self.simulated,
        )
        if self.config["verdict"] == "json_line":
            verdict = last_json_object(text=stdout)
            if verdict is not None:
                _apply_verdict(result=result, verdict=verdict)
        return result


def child_env(*, ctx: TaskContext, env_allow: list[str], extra: dict[str, str]) -> dict[str, str]:
    """Only allow-listed variables reach the child, so daemon secrets stay out."""
    env = {name: os.environ[name] for name in env_allow if name in os.environ}
    env.update(extra)
    env.update(
        {
            "HIVE_TASK_ID": str(ctx.task_id),
            "HIVE_ATTEMPT": str(ctx.attempt),
            "HIVE_ROLE": ctx.role,
            "HIVE_STEP": ctx.step,
            "HIVE_ROUND": str(ctx.round),
            "HIVE_PATTERN": ctx.pattern,
            "HIVE_AGENT_NAME": ctx.agent_name,
            "HIVE_WORKSPACE": ctx.workspace,
            "HIVE_TITLE": ctx.title,
            "HIVE_DESCRIPTION": bound_text(ctx.description, limit=ENV_TEXT_LIMIT),
            "HIVE_HANDOFF_NOTE": bound_text(ctx.handoff_note, limit=ENV_TEXT_LIMIT),
            ATTEMPT_MARKER_ENV: attempt_marker(task_id=ctx.task_id, attempt=ctx.attempt),
        }
    )
    if ctx.branch:
        # a code session: the workspace is the attempt's own worktree
        env.update({"HIVE_WORKTREE": ctx.workspace, "HIVE_BRANCH": ctx.branch, "HIVE_BASE_SHA": ctx.base_sha})
    return {name: no_nul(value) for name, value in env.items()}


def last_json_object(*, text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return parsed
    return None


def _resolve_workdir(*, workspace: str, cwd: str) -> tuple[str, str]:
    """The real directory to run in, or an error when it is missing or escapes the workspace."""
    root = Path(workspace)
    if not root.is_absolute() or not root.is_dir():
        return "", f"workspace not found: {workspace}"
    root = root.resolve()
    # resolve() follows symlinks, so a link pointing outside is caught too
    target = (root / cwd).resolve()
    if target != root and root not in target.parents:
        return "", f"cwd {cwd!r} leaves the workspace"
    if not target.is_dir():
        return "", f"working directory not found: {cwd}"
    return str(target), ""


def _default_summary(*, succeeded: bool, exit_code: int, stdout: str, stderr: str, duration: float) -> str:
    timing = f"exit {exit_code} in {duration:.1f} s"
    if succeeded:
        lines = meaningful_lines(stdout)
        return clip(f"{lines[0]} ({timing})") if lines else timing
    # a failing program usually explains itself at the end of stderr
    lines = meaningful_lines(stderr) or meaningful_lines(stdout)
    return clip(f"{lines[-1]} ({timing})") if lines else timing


def _apply_verdict(*, result: RuntimeResult, verdict: dict[str, Any]) -> None:
    """Let the program's closing JSON line decide the outcome and report its own numbers."""
    outcome = verdict.get("outcome")
    if outcome is not None:
        if outcome not in {str(item) for item in Outcome}:
            result.outcome = Outcome.FAILURE
            result.error = f"verdict line has unknown outcome {outcome!r}"
            result.summary = result.error
            return
        result.outcome = Outcome(outcome)
    if isinstance(verdict.get("summary"), str) and verdict["summary"].strip():
        result.summary = clip(verdict["summary"].strip())
    artifacts = verdict.get("artifacts")
    if isinstance(artifacts, list):
        result.artifacts = [str(item) for item in artifacts]
    result.tokens_in = _count(verdict.get("tokens_in"))
    result.tokens_out = _count(verdict.get("tokens_out"))
    cost = parse_decimal(verdict.get("cost_usd", "0"))
    if cost is not None and cost >= 0:
        result.cost_usd = cost


def _count(value: Any) -> int:
    return int(value) if is_number(value) and value >= 0 else 0
