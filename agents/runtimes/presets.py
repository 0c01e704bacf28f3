"""Coding-agent CLIs as command runtimes: `{"preset": "aider", "model": "..."}` instead of a hand-written argv.

A preset knows its program's non-interactive invocation, the environment variables it
needs (its API key), and how to read its output: the final message and, where the CLI
reports them, tokens and cost. Everything else — the attempt's worktree as working
directory, the process group, timeouts, output bounds — is the command runtime's, and
the coordinator commits what the agent leaves in the worktree. Task text only ever fills
one argv element (the prompt), never a shell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from .base import (
    ENV_NAME,
    SPACE_CLASS,
    ConfigChecker,
    Outcome,
    RuntimeConfigError,
    RuntimeResult,
    clip,
    is_number,
    meaningful_lines,
    parse_decimal,
)
from .command import DEFAULT_ENV_ALLOW, CommandRuntime

MODEL = re.compile(rf"^[^\x00{SPACE_CLASS}]*$")
BASE_URL = re.compile(rf"^(https?://[^\x00{SPACE_CLASS}]+)?$")
EXTRA_ARG = re.compile(r"^-[^\x00{}]*$")
PROMPT = "Task #{task_id} ({role}, {step} step, round {round}): {title}\n\n{description}\n\n{handoff_note}"
DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Usage:
    summary: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal | None = None
    error: str = ""


@dataclass(frozen=True)
class Preset:
    program: str
    argv: Callable[[dict], list[str]]
    env: tuple[str, ...]
    parse: Callable[[str], Usage]


def _aider_argv(options: dict) -> list[str]:
    argv = ["aider", "--yes-always", "--no-git", "--no-pretty", "--no-stream", "--no-check-update"]
    argv += ["--no-show-model-warnings", "--no-analytics", "--edit-format", options["edit_format"] or "diff"]
    argv += ["--model", options["model"]] if options["model"] else []
    if options["base_url"]:
        argv += ["--openai-api-base", options["base_url"]]
    return [*argv, *options["extra_args"], "--message", PROMPT, "{files}"]


def _claude_argv(options: dict) -> list[str]:
    argv = ["claude", "-p", PROMPT, "--output-format", "json", "--permission-mode", "acceptEdits"]
    return argv + (["--model", options["model"]] if options["model"] else []) + options["extra_args"]


def _codex_argv(options: dict) -> list[str]:
    argv = ["codex", "exec", "--json", "--full-auto", "--skip-git-repo-check"]
    argv += ["--model", options["model"]] if options["model"] else []
    return [*argv, *options["extra_args"], PROMPT]


def _gemini_argv(options: dict) -> list[str]:
    argv = ["gemini", "--output-format", "json", "--yolo"]
    argv += ["--model", options["model"]] if options["model"] else []
    return [*argv, *options["extra_args"], "--prompt", PROMPT]


def _opencode_argv(options: dict) -> list[str]:
    argv = ["opencode", "run", "--format", "json"]
    argv += ["--model", options["model"]] if options["model"] else []
    return [*argv, *options["extra_args"], PROMPT]


# aider: "Tokens: 2.3k sent, 120 received. Cost: $0.0012 message, $0.0040 session."
AIDER_TOKENS = re.compile(r"Tokens:\s*([\d.,]+)(k?)\s*sent,\s*([\d.,]+)(k?)\s*received", re.IGNORECASE)
AIDER_COST = re.compile(r"Cost:\s*\$([\d.]+)\s*message", re.IGNORECASE)


def parse_aider(stdout: str) -> Usage:
    sent = received = 0
    cost: Decimal | None = None
    for match in AIDER_TOKENS.finditer(stdout):
        sent += _count(match.group(1), match.group(2))
        received += _count(match.group(3), match.group(4))
    costs = [parse_decimal(match.group(1)) for match in AIDER_COST.finditer(stdout)]
    if costs:
        cost = sum((value for value in costs if value is not None), Decimal("0"))
    lines = [line for line in meaningful_lines(stdout) if not AIDER_TOKENS.search(line)]
    return Usage(summary=clip(lines[-1]) if lines else "", tokens_in=sent, tokens_out=received, cost_usd=cost)


def parse_claude(stdout: str) -> Usage:
    data = _last_object(stdout)
    if data is None:
        return Usage()
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens_in = sum(
        _int(usage.get(key)) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    error = clip(str(data.get("result") or data.get("subtype") or "error")) if data.get("is_error") else ""
    return Usage(
        summary=_first_line(data.get("result")),
        tokens_in=tokens_in,
        tokens_out=_int(usage.get("output_tokens")),
        cost_usd=_decimal(data.get("total_cost_usd")),
        error=error,
    )


def parse_codex(stdout: str) -> Usage:
    tokens_in = tokens_out = 0
    message = error = ""
    for event in _json_lines(stdout):
        kind = event.get("type")
        if kind == "turn.completed" and isinstance(event.get("usage"), dict):
            tokens_in += _int(event["usage"].get("input_tokens"))
            tokens_out += _int(event["usage"].get("output_tokens"))
        elif kind == "item.completed" and isinstance(event.get("item"), dict):
            item = event["item"]
            if item.get("type", item.get("item_type")) in {"agent_message", "assistant_message"}:
                message = str(item.get("text", ""))
        elif kind in {"turn.failed", "error"}:
            detail = event.get("error", event)
            error = clip(str(detail.get("message", "failed") if isinstance(detail, dict) else detail))
    return Usage(summary=_first_line(message), tokens_in=tokens_in, tokens_out=tokens_out, error=error)


def parse_gemini(stdout: str) -> Usage:
    data = _last_object(stdout)
    if data is None:
        return Usage()
    tokens_in = tokens_out = 0
    models = (data.get("stats") or {}).get("models") if isinstance(data.get("stats"), dict) else None
    for model in (models or {}).values():
        tokens = model.get("tokens") if isinstance(model, dict) else None
        if isinstance(tokens, dict):
            tokens_in += _int(tokens.get("prompt"))
            tokens_out += _int(tokens.get("candidates"))
    error = data.get("error")
    message = error.get("message", "error") if isinstance(error, dict) else (str(error) if error else "")
    return Usage(summary=_first_line(data.get("response")), tokens_in=tokens_in, tokens_out=tokens_out, error=message)


def parse_opencode(stdout: str) -> Usage:
    tokens_in = tokens_out = 0
    cost = Decimal("0")
    text = error = ""
    for event in _json_lines(stdout):
        part = event.get("part") if isinstance(event.get("part"), dict) else {}
        if event.get("type") == "step_finish":
            tokens = part.get("tokens") if isinstance(part.get("tokens"), dict) else {}
            tokens_in += _int(tokens.get("input"))
            tokens_out += _int(tokens.get("output"))
            cost += _decimal(part.get("cost")) or Decimal("0")
        elif event.get("type") == "text":
            text = str(part.get("text", ""))
        elif event.get("type") == "error":
            detail = event.get("error", {})
            error = clip(str(detail.get("message", detail) if isinstance(detail, dict) else detail))
    return Usage(summary=_first_line(text), tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost, error=error)


PRESETS: dict[str, Preset] = {
    "aider": Preset("aider", _aider_argv, ("OPENAI_API_KEY", "OPENAI_API_BASE"), parse_aider),
    "claude-code": Preset("claude", _claude_argv, ("ANTHROPIC_API_KEY",), parse_claude),
    "codex": Preset("codex", _codex_argv, ("OPENAI_API_KEY", "CODEX_API_KEY"), parse_codex),
    "gemini-cli": Preset("gemini", _gemini_argv, ("GEMINI_API_KEY", "GOOGLE_API_KEY"), parse_gemini),
    "opencode": Preset("opencode", _opencode_argv, ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"), parse_opencode),
}


class PresetRuntime(CommandRuntime):
    """A command runtime whose argv, environment and output reading come from a preset."""

    OPTIONS = ("preset", "model", "base_url", "edit_format", "extra_args", "env_allow", "timeout")
    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["preset"],
        "properties": {
            "preset": {"enum": sorted(PRESETS)},
            "model": {"type": "string", "pattern": MODEL.pattern},
            "base_url": {"type": "string", "pattern": BASE_URL.pattern},
            "edit_format": {"enum": ["", "diff", "whole", "udiff"]},
            "extra_args": {"type": "array", "items": {"type": "string", "pattern": EXTRA_ARG.pattern}},
            "env_allow": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
            "timeout": {"type": "number", "minimum": 1, "maximum": 86400},
        },
    }

    @classmethod
    def validate_config(cls, config: dict) -> dict:
        checker = ConfigChecker(config, allowed=cls.OPTIONS)
        clean = {
            "preset": checker.choice("preset", default="aider", choices=sorted(PRESETS)),
            "model": checker.text("model", default=""),
            "base_url": checker.text("base_url", default=""),
            "edit_format": checker.choice("edit_format", default="", choices=["", "diff", "whole", "udiff"]),
            "extra_args": checker.text_list("extra_args", default=[]),
            "env_allow": checker.text_list("env_allow", default=[]),
            "timeout": checker.number("timeout", default=DEFAULT_TIMEOUT_S, minimum=1, maximum=86400),
        }
        if not MODEL.fullmatch(clean["model"]):
            checker.fail("model", "must be a model name without spaces")
        if not BASE_URL.fullmatch(clean["base_url"]):
            checker.fail("base_url", "must be an http:// or https:// URL")
        if not all(EXTRA_ARG.fullmatch(arg) for arg in clean["extra_args"]):
            # options only: a positional argument could become the program's script or prompt
            checker.fail("extra_args", "must be options starting with '-' (--name=value), without placeholders")
        for name in clean["env_allow"]:
            if not ENV_NAME.fullmatch(name):
                checker.fail("env_allow", f"{name!r} is not an environment variable name")
        checker.check()
        try:
            CommandRuntime.validate_config(command_config(clean))
        except RuntimeConfigError as exc:  # a preset's own argv is always valid; this guards extra_args
            raise RuntimeConfigError({"extra_args": "; ".join(exc.errors.values())}) from exc
        return clean

    def __init__(self, config: dict):
        super().__init__(CommandRuntime.validate_config(command_config(config)))
        self.preset = PRESETS[config["preset"]]

    def _judge(self, *, exit_code: int, output: str, stdout: str, stderr: str, duration: float) -> RuntimeResult:
        result = super()._judge(exit_code=exit_code, output=output, stdout=stdout, stderr=stderr, duration=duration)
        usage = self.preset.parse(stdout)
        result.tokens_in, result.tokens_out = usage.tokens_in, usage.tokens_out
        if usage.cost_usd is not None:
            result.cost_usd = usage.cost_usd
        if usage.summary and result.outcome is Outcome.SUCCESS:
            result.summary = usage.summary
        if usage.error:
            result.outcome = Outcome.FAILURE
            result.error = result.summary = f"{self.preset.program}: {usage.error}"
        return result


def command_config(options: dict) -> dict[str, Any]:
    preset = PRESETS[options["preset"]]
    return {
        "argv": preset.argv(options),
        "env_allow": list(dict.fromkeys([*DEFAULT_ENV_ALLOW, *preset.env, *options["env_allow"]])),
        "timeout": options["timeout"],
    }


def _count(number: str, thousands: str) -> int:
    value = float(number.replace(",", ""))
    return int(round(value * 1000)) if thousands else int(value)


def _int(value: Any) -> int:
    return int(value) if is_number(value) and value >= 0 else 0


def _decimal(value: Any) -> Decimal | None:
    parsed = parse_decimal(value)
    return parsed if parsed is not None and parsed >= 0 else None


def _first_line(text: Any) -> str:
    lines = meaningful_lines(text) if isinstance(text, str) else []
    return clip(lines[0]) if lines else ""


def _json_lines(text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def _last_object(text: str) -> dict | None:
    try:
        data = json.loads(text.strip())
    except ValueError:
        events = _json_lines(text)
        return events[-1] if events else None
    return data if isinstance(data, dict) else None
