"""What every agent runtime shares: the task it is given, the result it returns, config checks.

Nothing here touches the database, so runtimes can run in worker threads.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import math
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Python's whitespace (what str.strip() removes), spelled out: "\s" means less in a JSON schema's (ECMA) pattern
# than in Python, so a published pattern written with it would accept text the validation then finds blank.
SPACE_CLASS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Text with at least one character that is neither NUL nor whitespace, and no NUL anywhere.
NOT_BLANK_PATTERN = rf"^[^\x00]*[^\x00{SPACE_CLASS}][^\x00]*$"
COST_QUANTUM = Decimal("0.000001")
SUMMARY_MAX_CHARS = 200
# A price or other non-negative decimal in a config, as the API schema describes it (see parse_decimal).
DECIMAL_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*$"}]}


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    CHANGES_REQUESTED = "changes_requested"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class TaskContext:
    task_id: int
    attempt: int
    title: str
    description: str
    role: str
    step: str
    pattern: str
    workspace: str
    files: tuple[str, ...] = ()
    handoff_note: str = ""
    round: int = 1
    pair_partner: str = ""
    session_goal: str = ""
    workflow_title: str = ""
    agent_name: str = ""
    # Code sessions: `workspace` is the attempt's own git worktree, on `branch`; `base_sha` is the
    # commit the workflow's changes are measured from (its diff for a review is base_sha..HEAD).
    branch: str = ""
    base_sha: str = ""
    # Live output: called from the runtime's thread with each chunk of text as it arrives.
    on_output: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    # told the process group id of a program the runtime starts, so it can be killed on reclaim
    on_process_start: Callable[[int], None] | None = field(default=None, compare=False, repr=False)


@dataclass
class RuntimeResult:
    outcome: Outcome
    summary: str = ""
    output: str = ""
    artifacts: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal("0")
    simulated: bool = False
    duration_s: float = 0.0
    error: str = ""
    exit_code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["outcome"] = str(self.outcome)
        data["cost_usd"] = str(self.cost_usd)
        return data


class RuntimeConfigError(ValueError):
    """A runtime config that cannot be used; `errors` maps each bad field to its reason."""

    def __init__(self, errors: dict[str, str]):
        # errors stays the only argument so the exception pickles across processes
        super().__init__(errors)
        self.errors = dict(errors)

    def __str__(self) -> str:
        details = "; ".join(f"{name}: {reason}" for name, reason in self.errors.items())
        return f"invalid runtime config: {details}"


class Runtime(abc.ABC):
    kind: ClassVar[str]
    simulated: ClassVar[bool] = False

    def __init__(self, config: dict):
        self.config = config

    @classmethod
    @abc.abstractmethod
    def validate_config(cls, config: dict) -> dict:
        """Return the config with defaults filled in, or raise RuntimeConfigError."""

    @abc.abstractmethod
    def run(self, ctx: TaskContext, *, cancel: threading.Event | None = None) -> RuntimeResult:
        """Execute one task; execution problems come back as FAILURE results, never as exceptions."""

    def failed(self, *, error: str, duration_s: float = 0.0, **extra: Any) -> RuntimeResult:
        return RuntimeResult(
            outcome=Outcome.FAILURE,
            summary=error,
            error=error,
            simulated=self.simulated,
            duration_s=round(duration_s, 3),
            **extra,
        )


def omitted_marker(*, count: int) -> str:
    return f"\n… {count} bytes omitted …\n"


def bound_text(text: str, *, limit: int) -> str:
    """Keep the head and the tail of text within `limit` UTF-8 bytes, marking the cut."""
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    omitted = len(raw) - head - tail
    return (
        raw[:head].decode("utf-8", errors="replace")
        + omitted_marker(count=omitted)
        + raw[-tail:].decode("utf-8", errors="replace")
    )


def meaningful_lines(text: str) -> list[str]:
    """Non-blank lines without markdown decoration or machine-readable JSON."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip().lstrip("#>*-` ").rstrip("*` ").strip()
        if stripped and not stripped.startswith("{"):
            lines.append(stripped)
    return lines


def clip(text: str, *, limit: int = SUMMARY_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def token_cost(*, tokens: int, price_per_1k: Decimal) -> Decimal:
    return (Decimal(tokens) / 1000 * price_per_1k).quantize(COST_QUANTUM)


class ConfigChecker:
    """Reads a raw config into a normalised, JSON-serialisable one, collecting an error per field.

    Each reader returns the default when the value is bad so later checks can still run;
    `check()` then raises with every problem at once.
    """

    def __init__(self, config: dict | None, *, allowed: Iterable[str]):
        self.errors: dict[str, str] = {}
        self.raw: dict = {} if config is None else config
        if not isinstance(self.raw, dict):
            self.errors["config"] = "must be an object"
            self.raw = {}
        allowed = sorted(allowed)
        for key in self.raw:
            if key not in allowed:
                self.errors[str(key)] = f"unknown setting; expected one of {', '.join(allowed)}"

    def fail(self, key: str, reason: str) -> None:
        self.errors.setdefault(key, reason)

    def check(self) -> None:
        if self.errors:
            raise RuntimeConfigError(self.errors)

    def integer(self, key: str, *, default: int, minimum: int, maximum: int) -> int:
        value = self.raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, "must be a whole number")
            return default
        if not minimum <= value <= maximum:
            self.fail(key, f"must be between {minimum} and {maximum}")
            return default
        return value

    def number(self, key: str, *, default: float, minimum: float, maximum: float) -> float:
        value = self.raw.get(key, default)
        if not is_number(value):
            self.fail(key, "must be a number")
            return default
        if not minimum <= value <= maximum:
            self.fail(key, f"must be between {minimum:g} and {maximum:g}")
            return default
        return value

    def decimal(self, key: str, *, default: str) -> str:
        value = self.raw.get(key, default)
        parsed = parse_decimal(value)
        if parsed is None or parsed < 0:
            self.fail(key, 'must be a non-negative decimal such as "0.002"')
            return default
        return str(parsed)

    def text(self, key: str, *, default: str = "", required: bool = False) -> str:
        if required and key not in self.raw:
            self.fail(key, "is required")
            return default
        value = self.raw.get(key, default)
        if not isinstance(value, str):
            self.fail(key, "must be a string")
            return default
        if required and not value.strip():
            self.fail(key, "must not be empty")
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
            return default
        return value

    def choice(self, key: str, *, default: str, choices: Iterable[str]) -> str:
        choices = list(choices)
        value = self.raw.get(key, default)
        if value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}")
            return default
        return value

    def text_list(self, key: str, *, default: list[str], required: bool = False) -> list[str]:
        if required and key not in self.raw:
            self.fail(key, "is required")
            return list(default)
        value = self.raw.get(key, default)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, "must be a list of strings")
            return list(default)
        if required and not value:
            self.fail(key, "must not be empty")
        return list(value)

    def text_map(self, key: str, *, default: dict[str, str]) -> dict[str, str]:
        value = self.raw.get(key, default)
        if not isinstance(value, dict) or not all(
            isinstance(name, str) and isinstance(item, str) for name, item in value.items()
        ):
            self.fail(key, "must be an object mapping strings to strings")
            return dict(default)
        return dict(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a string or number, or None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None
