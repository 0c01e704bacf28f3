"""Run a real program for a task, inside the session workspace, without a shell."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar

from .base import (
    ENV_NAME,
    ConfigChecker,
    Outcome,
    Runtime,
    RuntimeResult,
    TaskContext,
    bound_text,
    clip,
    is_number,
    meaningful_lines,
    omitted_marker,
    parse_decimal,
)

# {{name}} is the escape for a literal {name}; any other braces are left alone
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}|\{(\w+)\}")
FILES_ELEMENT = "{files}"
TEXT_PLACEHOLDERS = frozenset(
    {
        "title",
        "description",
        "task_id",
        "attempt",
        "role",
        "step",
        "pattern",
        "workspace",
        "handoff_note",
        "round",
        "agent_name",
        "pair_partner",
        "session_goal",
        "workflow_title",
    }
)
# argv[0] decides what runs, so task text must never reach it
EXECUTABLE_PLACEHOLDERS = frozenset({"workspace"})

# Programs that run their script argument as code, and the flags that take that script.
# Task text inside such a script would be code too, so placeholders may not appear in it.
SCRIPT_FLAGS = {
    "sh": {"-c"},
    "bash": {"-c"},
    "dash": {"-c"},
    "zsh": {"-c"},
    "ksh": {"-c"},
    "fish": {"-c", "--command"},
    "csh": {"-c"},
    "tcsh": {"-c"},
    "busybox": {"-c"},
    "python": {"-c"},
    "pypy": {"-c"},
    "node": {"-e", "--eval", "-p", "--print"},
    "deno": {"eval"},
    "bun": {"-e", "--eval", "-p", "--print"},
    "perl": {"-e", "-E"},
    "ruby": {"-e"},
    "php": {"-r"},
    "lua": {"-e"},
    "pwsh": {"-c", "-command", "-Command"},
    "powershell": {"-c", "-command", "-Command"},
    "Rscript": {"-e"},
    "osascript": {"-e"},
    "tclsh": set(),
    "awk": set(),
}
INTERPRETER_VERSION = re.compile(r"^(python|pypy|perl|ruby|php|lua|node)[0-9.]*$")
ENV_TEXT_VARIABLES = "HIVE_TITLE, HIVE_DESCRIPTION, HIVE_HANDOFF_NOTE, HIVE_ROLE, HIVE_STEP, HIVE_TASK_ID"

DEFAULT_ENV_ALLOW = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH"]
DEFAULT_TIMEOUT_S = 600
DEFAULT_MAX_OUTPUT_BYTES = 65536
ENV_TEXT_LIMIT = 32768
POLL_INTERVAL_S = 0.05
KILL_GRACE_S = 2.0
PIPE_DRAIN_S = 2.0
READ_CHUNK = 65536


class BoundedCapture:
    """Keeps the first and last bytes of a stream, so memory stays bounded whatever the child prints."""

    def __init__(self, *, limit: int):
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self._total = 0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._total += len(data)
            room = self._head_limit - len(self._head)
            if room > 0:
                self._head += data[:room]
                data = data[room:]
            if data:
                self._tail.append(data)
                self._tail_size += len(data)
                # drop whole chunks only; the final trim happens once in text()
                while self._tail_size - len(self._tail[0]) >= self._tail_limit:
                    self._tail_size -= len(self._tail.popleft())

    def text(self) -> str:
        with self._lock:
            tail = b"".join(self._tail)[-self._tail_limit :] if self._tail_limit else b""
            head = bytes(self._head)
            omitted = self._total - len(head) - len(tail)
        decoded_head = head.decode("utf-8", errors="replace")
        decoded_tail = tail.decode("utf-8", errors="replace")
        if omitted:
            return decoded_head + omitted_marker(count=omitted) + decoded_tail
        return decoded_head + decoded_tail


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
                "items": {"type": "string", "pattern": r"^[^\x00]*[^\x00\s][^\x00]*$"},
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
            "success_exit_codes": _check_exit_codes(checker),
            "verdict": checker.choice("verdict", default="exit_code", choices=["exit_code", "json_line"]),
            "failure_outcome": checker.choice(
                "failure_outcome",
                default=str(Outcome.FAILURE),
                choices=[str(Outcome.FAILURE), str(Outcome.CHANGES_REQUESTED), str(Outcome.CONFLICT)],
            ),
            # a scripted stand-in (demo patches, canned documents) is labelled simulated wherever it is shown
            "simulated": _check_simulated(checker),
        }
        _check_argv(checker, argv=clean["argv"])
        _check_scripts(checker, argv=clean["argv"])
        _check_cwd(checker, cwd=clean["cwd"])
        _check_env(checker, env_allow=clean["env_allow"], env=clean["env"])
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
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            return self.failed(error=f"executable not found: {argv[0]}")
        except PermissionError:
            return self.failed(error=f"permission denied running {argv[0]}")
        except OSError as exc:
            return self.failed(error=f"could not start {argv[0]}: {exc.strerror or exc}")
        return self._supervise(proc=proc, cancel=cancel, started=started)

    def _supervise(self, *, proc: subprocess.Popen, cancel: threading.Event | None, started: float) -> RuntimeResult:
        limit = self.config["max_output_bytes"]
        combined = BoundedCapture(limit=limit)
        stdout_tail = BoundedCapture(limit=limit)
        stderr_tail = BoundedCapture(limit=limit)
        readers = [
            _start_reader(pipe=proc.stdout, sinks=(combined, stdout_tail)),
            _start_reader(pipe=proc.stderr, sinks=(combined, stderr_tail)),
        ]
        stopped = _wait_or_stop(proc=proc, cancel=cancel, timeout=self.config["timeout"])
        _drain(proc=proc, readers=readers)
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


def render_argv(*, template: list[str], ctx: TaskContext) -> list[str]:
    """Fill placeholders element by element; task text only ever becomes a literal argument."""
    values = placeholder_values(ctx=ctx)
    argv: list[str] = []
    for element in template:
        if element == FILES_ELEMENT:
            argv.extend(_no_nul(path) for path in ctx.files)
            continue
        argv.append(PLACEHOLDER.sub(lambda match: _substitute(match=match, values=values), element))
    return argv


def placeholder_values(*, ctx: TaskContext) -> dict[str, str]:
    values = {name: str(getattr(ctx, name)) for name in TEXT_PLACEHOLDERS}
    # exec refuses NUL bytes; dropping them keeps a stray one from aborting the run
    return {name: _no_nul(value) for name, value in values.items()}


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
        }
    )
    return {name: _no_nul(value) for name, value in env.items()}


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


def _substitute(*, match: re.Match, values: dict[str, str]) -> str:
    escaped, name = match.groups()
    if escaped is not None:
        return "{" + escaped + "}"
    return values[name]


def _no_nul(value: str) -> str:
    return value.replace("\x00", "")


def _check_argv(checker: ConfigChecker, *, argv: list[str]) -> None:
    for index, element in enumerate(argv):
        if "\x00" in element:
            checker.fail("argv", f"element {index} must not contain NUL bytes")
            continue
        if not element.strip():
            checker.fail("argv", f"element {index} is blank; leave it out or give it text")
            continue
        names = [name for _, name in PLACEHOLDER.findall(element) if name]
        unknown = sorted(set(names) - TEXT_PLACEHOLDERS - {"files"})
        if unknown:
            known = ", ".join("{" + name + "}" for name in sorted(TEXT_PLACEHOLDERS | {"files"}))
            checker.fail("argv", f"element {index} uses unknown placeholder {{{unknown[0]}}}; known: {known}")
        elif "files" in names and element != FILES_ELEMENT:
            checker.fail("argv", f"element {index}: {FILES_ELEMENT} must be a whole argv element")
        elif index == 0 and (not element.strip() or set(names) - EXECUTABLE_PLACEHOLDERS):
            checker.fail("argv", "element 0 must name the program; only {workspace} may appear in it")


def _program(element: str) -> str:
    """The interpreter an argv element names: /usr/bin/python3.12 -> python, bash -> bash."""
    name = PurePosixPath(element).name
    match = INTERPRETER_VERSION.match(name)
    return match.group(1) if match else name


def _script_positions(argv: list[str]) -> list[tuple[int, str]]:
    """Indexes of argv elements a shell or interpreter runs as code, with the command that runs them.

    `env [VAR=x] sh -c SCRIPT`, `bash -lc SCRIPT`, `python3 -c SCRIPT`, `node -e SCRIPT`, …
    """
    start = 0
    if argv and _program(argv[0]) == "env":
        start = 1
        while start < len(argv) and (argv[start].startswith("-") or "=" in argv[start]):
            start += 1
    if start >= len(argv):
        return []
    program = _program(argv[start])
    flags = SCRIPT_FLAGS.get(program)
    if flags is None:
        return []
    positions = []
    for index in range(start + 1, len(argv)):
        element = argv[index]
        short_combined = element.startswith("-") and not element.startswith("--") and "c" in element[1:]
        if element in flags or (program in {"sh", "bash", "dash", "zsh", "ksh"} and short_combined):
            if index + 1 < len(argv):
                positions.append((index + 1, f"{program} {element}"))
            break
    if not flags and start + 1 < len(argv):
        # awk and tclsh run their first non-option argument
        rest = [i for i in range(start + 1, len(argv)) if not argv[i].startswith("-")]
        if rest:
            positions.append((rest[0], program))
    return positions


def _check_scripts(checker: ConfigChecker, *, argv: list[str]) -> None:
    """Task text must never become code: no placeholders inside a shell's or an interpreter's script."""
    for index, command in _script_positions(argv):
        names = [name for _, name in PLACEHOLDER.findall(argv[index]) if name]
        if names:
            checker.fail(
                "argv",
                f"element {index} is the script of `{command}` and uses {{{names[0]}}}: task text there would run "
                f'as code; read it from the environment instead ({ENV_TEXT_VARIABLES}, e.g. "$HIVE_TITLE")',
            )
            return


def _check_cwd(checker: ConfigChecker, *, cwd: str) -> None:
    path = PurePosixPath(cwd)
    if path.is_absolute():
        checker.fail("cwd", "must be a path relative to the workspace")
    elif ".." in path.parts:
        checker.fail("cwd", "must stay inside the workspace (no '..')")
    elif "\x00" in cwd:
        checker.fail("cwd", "must not contain NUL bytes")


def _check_env(checker: ConfigChecker, *, env_allow: list[str], env: dict[str, str]) -> None:
    bad_allow = [name for name in env_allow if not ENV_NAME.fullmatch(name)]
    if bad_allow:
        checker.fail("env_allow", f"{bad_allow[0]!r} is not a valid variable name")
    for name, value in env.items():
        if not ENV_NAME.fullmatch(name):
            checker.fail("env", f"{name!r} is not a valid variable name")
        elif name.startswith("HIVE_"):
            checker.fail("env", f"{name} is reserved; HIVE_* variables are set for each task")
        elif "\x00" in value:
            checker.fail("env", f"value of {name} must not contain NUL bytes")


def _check_simulated(checker: ConfigChecker) -> bool:
    value = checker.raw.get("simulated", False)
    if not isinstance(value, bool):
        checker.fail("simulated", "must be true or false")
        return False
    return value


def _check_exit_codes(checker: ConfigChecker) -> list[int]:
    codes = checker.raw.get("success_exit_codes", [0])
    if (
        not isinstance(codes, list)
        or not codes
        or not all(isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255 for code in codes)
    ):
        checker.fail("success_exit_codes", "must be a non-empty list of exit codes between 0 and 255")
        return [0]
    return list(codes)


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


def _start_reader(*, pipe: IO[bytes], sinks: tuple[BoundedCapture, ...]) -> threading.Thread:
    def pump() -> None:
        with pipe:
            while chunk := pipe.read1(READ_CHUNK):
                for sink in sinks:
                    sink.write(chunk)

    reader = threading.Thread(target=pump, name="hive-command-reader", daemon=True)
    reader.start()
    return reader


def _wait_or_stop(*, proc: subprocess.Popen, cancel: threading.Event | None, timeout: float) -> str:
    """Wait for the child; on timeout or cancel kill its process group and say why."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=POLL_INTERVAL_S)
            return ""
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            reason = "cancelled"
        elif time.monotonic() >= deadline:
            reason = f"timed out after {timeout:g} s"
        else:
            continue
        _kill_group(proc=proc)
        return reason


def _kill_group(*, proc: subprocess.Popen) -> None:
    """SIGTERM the whole group, give it a short grace, then SIGKILL whatever is left."""
    _signal_group(pgid=proc.pid, signum=signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    # grandchildren may outlive the direct child; wait for them within the same grace
    while _group_alive(pgid=proc.pid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    _signal_group(pgid=proc.pid, signum=signal.SIGKILL)
    proc.wait()


def _drain(*, proc: subprocess.Popen, readers: list[threading.Thread]) -> None:
    """Finish reading output; descendants still holding the pipes open are killed."""
    deadline = time.monotonic() + PIPE_DRAIN_S
    for reader in readers:
        reader.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(reader.is_alive() for reader in readers):
        _signal_group(pgid=proc.pid, signum=signal.SIGKILL)
        for reader in readers:
            reader.join(timeout=PIPE_DRAIN_S)


def _signal_group(*, pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(*, pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


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
