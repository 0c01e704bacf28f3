"""Run a session's verify commands in a worktree: the coordinator's own check of a claim or a merge.

Each command is an argv list (never a shell string), runs with a timeout in its own process group
(killed whole on timeout, dying with the daemon), and leaves its exit code, duration and output tail.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agents.runtimes.process import kill_group, popen_fenced

DEFAULT_TIMEOUT_S = 600.0
OUTPUT_TAIL_BYTES = 8000
ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV")
NOT_FOUND_EXIT = 127


@dataclass(frozen=True)
class CommandRun:
    command: list[str]
    exit_code: int | None  # None: killed at the timeout
    output_tail: str
    duration_ms: int
    passed: bool

    def as_dict(self) -> dict:
        return asdict(self)


def verify_run(
    *,
    commands: list[list[str]],
    cwd: str | Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    tail_bytes: int = OUTPUT_TAIL_BYTES,
    env: dict[str, str] | None = None,
) -> list[CommandRun]:
    """Run `commands` in order, stopping at the first that fails; one CommandRun per command run."""
    runs = []
    for command in commands:
        run = command_run(command=command, cwd=cwd, timeout_s=timeout_s, tail_bytes=tail_bytes, env=env)
        runs.append(run)
        if not run.passed:
            break
    return runs


def verify_passed(runs: list[CommandRun]) -> bool:
    return all(run.passed for run in runs)


def command_run(
    *, command: list[str], cwd: str | Path, timeout_s: float, tail_bytes: int, env: dict[str, str] | None = None
) -> CommandRun:
    child_env = {name: os.environ[name] for name in ENV_PASSTHROUGH if name in os.environ}
    child_env.update(env or {})
    child_env["HIVE_WORKTREE"] = str(cwd)
    started = time.monotonic()
    # output goes to a file, so memory stays bounded whatever the command prints
    with tempfile.TemporaryFile() as sink:
        try:
            proc = popen_fenced(list(command), cwd=str(cwd), env=child_env, stdout=sink, stderr=subprocess.STDOUT)
        except OSError as exc:
            return CommandRun(
                command=list(command),
                exit_code=NOT_FOUND_EXIT,
                output_tail=f"could not start {command[0]}: {exc.strerror or exc}",
                duration_ms=_ms_since(started),
                passed=False,
            )
        exit_code: int | None
        try:
            exit_code = proc.wait(timeout=timeout_s)
            note = ""
        except subprocess.TimeoutExpired:
            kill_group(proc=proc)
            exit_code = None
            note = f"\n[killed: timed out after {timeout_s:g} s]"
        duration_ms = _ms_since(started)
        output = _tail(sink, limit=tail_bytes) + note
    return CommandRun(
        command=list(command), exit_code=exit_code, output_tail=output, duration_ms=duration_ms, passed=exit_code == 0
    )


def _tail(sink, *, limit: int) -> str:
    size = sink.seek(0, os.SEEK_END)
    start = max(0, size - limit)
    sink.seek(start)
    data = sink.read()
    text = data.decode("utf-8", errors="replace")
    return (f"[… {start} earlier bytes omitted]\n" + text) if start else text


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
