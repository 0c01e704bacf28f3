"""What a command runtime's config may say: placeholders, argv rendering and the config checks.

Task text only ever becomes a literal argument: never the program, never a shell's or an interpreter's script.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from .base import ENV_NAME, ConfigChecker, TaskContext

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


def render_argv(*, template: list[str], ctx: TaskContext) -> list[str]:
    """Fill placeholders element by element; task text only ever becomes a literal argument."""
    values = placeholder_values(ctx=ctx)
    argv: list[str] = []
    for element in template:
        if element == FILES_ELEMENT:
            argv.extend(no_nul(path) for path in ctx.files)
            continue
        argv.append(PLACEHOLDER.sub(lambda match: _substitute(match=match, values=values), element))
    return argv


def placeholder_values(*, ctx: TaskContext) -> dict[str, str]:
    values = {name: str(getattr(ctx, name)) for name in TEXT_PLACEHOLDERS}
    # exec refuses NUL bytes; dropping them keeps a stray one from aborting the run
    return {name: no_nul(value) for name, value in values.items()}


def _substitute(*, match: re.Match, values: dict[str, str]) -> str:
    escaped, name = match.groups()
    if escaped is not None:
        return "{" + escaped + "}"
    return values[name]


def no_nul(value: str) -> str:
    return value.replace("\x00", "")


def check_argv(checker: ConfigChecker, *, argv: list[str]) -> None:
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


def check_scripts(checker: ConfigChecker, *, argv: list[str]) -> None:
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


def check_cwd(checker: ConfigChecker, *, cwd: str) -> None:
    path = PurePosixPath(cwd)
    if path.is_absolute():
        checker.fail("cwd", "must be a path relative to the workspace")
    elif ".." in path.parts:
        checker.fail("cwd", "must stay inside the workspace (no '..')")
    elif "\x00" in cwd:
        checker.fail("cwd", "must not contain NUL bytes")


def check_env(checker: ConfigChecker, *, env_allow: list[str], env: dict[str, str]) -> None:
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


def check_simulated(checker: ConfigChecker) -> bool:
    value = checker.raw.get("simulated", False)
    if not isinstance(value, bool):
        checker.fail("simulated", "must be true or false")
        return False
    return value


def check_exit_codes(checker: ConfigChecker) -> list[int]:
    codes = checker.raw.get("success_exit_codes", [0])
    if (
        not isinstance(codes, list)
        or not codes
        or not all(isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255 for code in codes)
    ):
        checker.fail("success_exit_codes", "must be a non-empty list of exit codes between 0 and 255")
        return [0]
    return list(codes)
