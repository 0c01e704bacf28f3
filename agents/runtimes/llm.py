"""Ask an OpenAI-compatible chat completions endpoint to do a task."""

from __future__ import annotations

import json
import re
import threading
import time
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .base import (
    DECIMAL_SCHEMA,
    ENV_NAME,
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
    token_cost,
)
from .edits import FORMAT_INSTRUCTION, READ_INSTRUCTION, EditError, apply_edits, parse_edits, requested_reads
from .llm_context import Budget, editing, file_contents, repository_context, reviewing
from .llm_http import DEADLINE_SLACK_S, CallFailed, _message_content, auth_headers, call_with_deadline, post_chat
from .worktree import WorktreeError, commit_all, is_worktree

MAX_READS_PER_ROUND = 8
OUTPUT_LIMIT_BYTES = 16 * 1024
PROMPT_TEXT_LIMIT_BYTES = 64 * 1024

ROLE_BRIEFS = {
    "product_manager": "You are the product manager. Turn the request into clear, testable requirements "
    "with acceptance criteria and open questions.",
    "architect": "You are the software architect. Propose a concrete design: components, interfaces, "
    "data flow, trade-offs and risks.",
    "developer": "You are a senior developer. Deliver the implementation as concrete code changes with "
    "file paths, followed by a short explanation.",
    "tester": "You are the tester. Work out how the change must be tested, check it against the "
    "requirements and report what passes and what fails.",
    "devops": "You are the DevOps engineer. Plan and check the build, deployment and operational steps, "
    "calling out anything that would break a release.",
    "reviewer": "You are the code reviewer. Review the work for correctness, security, readability and "
    "test coverage; list each required change precisely.",
}
VERDICT_INSTRUCTION = "End your reply with exactly one line: VERDICT: APPROVED or VERDICT: CHANGES_REQUESTED."
RESULT_INSTRUCTION = "End your reply with exactly one line: RESULT: PASS or RESULT: FAIL."
CHECK_ROLES = frozenset({"tester", "devops"})
CHECK_STEPS = frozenset({"test", "build", "deploy"})

VERDICT_LINE = re.compile(
    r"^[\s>*_#`-]*verdict[\s*_`]*:[\s*_`]*(approved?|changes[ _-]requested|request[ _-]changes)\b",
    re.IGNORECASE | re.MULTILINE,
)
RESULT_LINE = re.compile(
    r"^[\s>*_#`-]*result[\s*_`]*:[\s*_`]*(pass(?:ed)?|fail(?:ed|ure)?)\b",
    re.IGNORECASE | re.MULTILINE,
)
VERDICT_WORDS = {
    "approved": Outcome.SUCCESS,
    "approve": Outcome.SUCCESS,
    "success": Outcome.SUCCESS,
    "changes_requested": Outcome.CHANGES_REQUESTED,
    "request_changes": Outcome.CHANGES_REQUESTED,
    "rejected": Outcome.CHANGES_REQUESTED,
}


class LLMRuntime(Runtime):
    kind: ClassVar[str] = "llm"

    # What validate_config accepts, for the published API schema.
    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "model"],
        "properties": {
            "base_url": {"type": "string", "pattern": r"^https?://[^/?#\x00\s\[\]]+(/[^?#\x00]*)?$"},
            "model": {"type": "string", "pattern": NOT_BLANK_PATTERN},
            "api_key_env": {"type": "string", "pattern": r"^([A-Za-z_][A-Za-z0-9_]*)?$"},
            "timeout": {"type": "number", "minimum": 1, "maximum": 3600},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "input_price_per_1k": DECIMAL_SCHEMA,
            "output_price_per_1k": DECIMAL_SCHEMA,
            "system_prompt": {"type": "string"},
            "context_tokens": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
            "max_reads": {"type": "integer", "minimum": 0, "maximum": 5},
            "stream": {"type": "boolean"},
        },
    }

    @classmethod
    def validate_config(cls, config: dict) -> dict:
        checker = ConfigChecker(
            config,
            allowed={
                "base_url",
                "model",
                "api_key_env",
                "timeout",
                "temperature",
                "max_tokens",
                "input_price_per_1k",
                "output_price_per_1k",
                "system_prompt",
                "context_tokens",
                "max_reads",
                "stream",
            },
        )
        if "api_key" in checker.raw:
            checker.errors["api_key"] = "keys never live in config; name an environment variable in api_key_env"
        clean = {
            "base_url": checker.text("base_url", required=True).strip().rstrip("/"),
            "model": checker.text("model", required=True).strip(),
            "api_key_env": checker.text("api_key_env", default="").strip(),
            "timeout": checker.number("timeout", default=120, minimum=1, maximum=3600),
            "temperature": checker.number("temperature", default=0.2, minimum=0, maximum=2),
            "max_tokens": checker.integer("max_tokens", default=2048, minimum=1, maximum=1_000_000),
            "input_price_per_1k": checker.decimal("input_price_per_1k", default="0"),
            "output_price_per_1k": checker.decimal("output_price_per_1k", default="0"),
            "system_prompt": checker.text("system_prompt", default=""),
            # Tokens of repository context (diff, files) per call; 0 sends none.
            "context_tokens": checker.integer("context_tokens", default=12_000, minimum=0, maximum=1_000_000),
            # Rounds in which a developer or architect may ask to read more files before answering.
            "max_reads": checker.integer("max_reads", default=2, minimum=0, maximum=5),
            "stream": checker.flag("stream", default=True),
        }
        _check_base_url(checker, base_url=clean["base_url"])
        if clean["api_key_env"] and not ENV_NAME.fullmatch(clean["api_key_env"]):
            checker.fail("api_key_env", "must be an environment variable name such as OPENAI_API_KEY")
        checker.check()
        return clean

    def run(self, ctx: TaskContext, *, cancel: threading.Event | None = None) -> RuntimeResult:
        started = time.monotonic()
        if cancel is not None and cancel.is_set():
            return self.failed(error="cancelled")
        headers, problem = auth_headers(api_key_env=self.config["api_key_env"])
        if problem:
            return self.failed(error=problem)
        messages = self.messages(ctx=ctx)
        usage = Usage()
        try:
            for read_round in range(self.config["max_reads"] + 1):
                content = self._call(ctx=ctx, headers=headers, messages=messages, usage=usage, cancel=cancel)
                reads = requested_reads(content) if editing(ctx) and not has_edit_blocks(content) else []
                if not reads or read_round == self.config["max_reads"]:
                    break
                messages += [{"role": "assistant", "content": content}, self._files_message(ctx=ctx, paths=reads)]
        except CallFailed as exc:
            return self.failed(error=str(exc), duration_s=time.monotonic() - started, **usage.as_result(self.config))
        return self._result(ctx=ctx, content=content, usage=usage, duration=time.monotonic() - started)

    def messages(self, *, ctx: TaskContext) -> list[dict[str, str]]:
        user = user_prompt(ctx=ctx)
        context = repository_context(ctx, budget_tokens=self.config["context_tokens"])
        if context:
            user = f"{user}\n\n{context}"
        return [
            {"role": "system", "content": system_prompt(ctx=ctx, custom=self.config["system_prompt"])},
            {"role": "user", "content": user},
        ]

    def request_body(self, *, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config["model"],
            "messages": messages,
            "temperature": self.config["temperature"],
            "max_tokens": self.config["max_tokens"],
        }
        if self.config["stream"]:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body

    def _call(self, *, ctx: TaskContext, headers: dict, messages: list, usage: Usage, cancel) -> str:
        url = f"{self.config['base_url']}/chat/completions"
        payload = self.request_body(messages=messages)
        timeout = self.config["timeout"]
        reply = call_with_deadline(
            fn=lambda: post_chat(url=url, headers=headers, payload=payload, timeout=timeout, on_text=ctx.on_output),
            cancel=cancel,
            deadline_s=timeout + DEADLINE_SLACK_S,
        )
        usage.add(reply)
        content = _message_content(reply)
        if content is None:
            raise CallFailed("response has no choices[0].message.content")
        return content

    def _files_message(self, *, ctx: TaskContext, paths: list[str]) -> dict[str, str]:
        shown = file_contents(ctx.workspace, paths[:MAX_READS_PER_ROUND], budget=Budget(self.config["context_tokens"]))
        skipped = len(paths) - MAX_READS_PER_ROUND
        note = (
            f"\n({skipped} more requested files not shown: at most {MAX_READS_PER_ROUND} per request)"
            if skipped > 0
            else ""
        )
        return {"role": "user", "content": f"{shown or '(no files)'}{note}\nNow answer the task."}

    def _result(self, *, ctx: TaskContext, content: str, usage: Usage, duration: float) -> RuntimeResult:
        tokens = usage.as_result(self.config)
        outcome, summary, error = judge_reply(ctx=ctx, content=content)
        artifacts: list[str] = []
        if outcome is Outcome.SUCCESS and editing(ctx):
            try:
                artifacts, summary = apply_reply_edits(ctx=ctx, content=content, summary=summary)
            except (EditError, WorktreeError, OSError) as exc:
                error = f"edits not applied: {exc}"
                return self.failed(
                    error=error, duration_s=duration, output=bound_text(content, limit=OUTPUT_LIMIT_BYTES), **tokens
                )
        return RuntimeResult(
            outcome=outcome,
            summary=summary,
            output=bound_text(content, limit=OUTPUT_LIMIT_BYTES),
            artifacts=artifacts,
            duration_s=round(duration, 3),
            error=error,
            **tokens,
        )


class Usage:
    """Tokens over every call of one run: a task that asked to read files pays for each round."""

    def __init__(self) -> None:
        self.tokens_in = 0
        self.tokens_out = 0

    def add(self, reply: dict) -> None:
        tokens_in, tokens_out = _usage(reply)
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out

    def as_result(self, config: dict) -> dict[str, Any]:
        cost = token_cost(tokens=self.tokens_in, price_per_1k=Decimal(config["input_price_per_1k"])) + token_cost(
            tokens=self.tokens_out, price_per_1k=Decimal(config["output_price_per_1k"])
        )
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "cost_usd": cost}


def apply_reply_edits(*, ctx: TaskContext, content: str, summary: str) -> tuple[list[str], str]:
    """Apply the reply's edits in the attempt's worktree and commit them as the agent."""
    edits = parse_edits(content)
    if not edits:
        return [], summary
    changed = apply_edits(ctx.workspace, edits)
    if is_worktree(ctx.workspace):
        sha = commit_all(
            ctx.workspace, message=f"{ctx.title}\n\nTask #{ctx.task_id}, attempt {ctx.attempt}", author=ctx.agent_name
        )
        if sha:
            return changed, clip(f"{summary} (edited {', '.join(changed)}; commit {sha[:10]})")
    return changed, clip(f"{summary} (edited {', '.join(changed)})")


def has_edit_blocks(content: str) -> bool:
    """The reply carries edits (well formed or not): it is an answer, not a request to read files."""
    try:
        return bool(parse_edits(content))
    except EditError:
        return True


def system_prompt(*, ctx: TaskContext, custom: str) -> str:
    brief = custom.strip() or ROLE_BRIEFS.get(ctx.role, f"You are the {ctx.role} on a software delivery team.")
    parts = [brief, "Be concrete and concise; the next agent acts on your answer."]
    instruction = _format_instruction(ctx=ctx)
    if instruction:
        parts.append(instruction)
    if editing(ctx) and ctx.workspace:
        parts += [FORMAT_INSTRUCTION, READ_INSTRUCTION]
    return "\n".join(parts)


def user_prompt(*, ctx: TaskContext) -> str:
    lines = []
    if ctx.workflow_title or ctx.pattern:
        lines.append(f"Workflow: {ctx.workflow_title or ctx.pattern} (pattern {ctx.pattern})")
    if ctx.session_goal:
        lines.append(f"Session goal: {ctx.session_goal}")
    lines.append(f"Step: {ctx.step}, round {ctx.round}, attempt {ctx.attempt}")
    if ctx.pair_partner:
        lines.append(f"You are pairing with {ctx.pair_partner}, who navigates.")
    lines += ["", f"Task #{ctx.task_id}: {ctx.title}", "", bound_text(ctx.description, limit=PROMPT_TEXT_LIMIT_BYTES)]
    if ctx.files:
        lines += ["", "Files:"] + [f"- {path}" for path in ctx.files]
    if ctx.handoff_note:
        lines += ["", "Handoff from the previous agent:", bound_text(ctx.handoff_note, limit=PROMPT_TEXT_LIMIT_BYTES)]
    return "\n".join(lines).strip()


def judge_reply(*, ctx: TaskContext, content: str) -> tuple[Outcome, str, str]:
    """Outcome, summary and runtime error for a model reply, honouring verdict lines."""
    lines = [line for line in meaningful_lines(content) if not _is_marker_line(line)]
    gist = clip(lines[0]) if lines else "empty reply"
    if _expects_verdict(ctx=ctx):
        verdict = review_verdict(content=content)
        if verdict is None:
            return Outcome.FAILURE, "reviewer reply has no VERDICT line", "reviewer reply has no VERDICT line"
        label = "approved" if verdict is Outcome.SUCCESS else "changes requested"
        return verdict, clip(f"{label} on round {ctx.round}: {gist}"), ""
    if _expects_result(ctx=ctx) and check_failed(content=content):
        return Outcome.FAILURE, clip(f"{ctx.role} reported FAIL: {gist}"), ""
    return Outcome.SUCCESS, gist, ""


def review_verdict(*, content: str) -> Outcome | None:
    matches = VERDICT_LINE.findall(content)
    if matches:
        return _verdict_word(matches[-1])
    value = _last_json_value(content=content, key="verdict")
    return _verdict_word(value) if value is not None else None


def check_failed(*, content: str) -> bool:
    matches = RESULT_LINE.findall(content)
    if matches:
        return matches[-1].lower().startswith("fail")
    value = _last_json_value(content=content, key="result")
    return value is not None and value.lower().startswith("fail")


def _check_base_url(checker: ConfigChecker, *, base_url: str) -> None:
    if "base_url" in checker.errors:
        return
    try:
        parts = urlsplit(base_url)
    except ValueError:  # e.g. "http://[" is not a URL at all
        checker.fail("base_url", "must be an http:// or https:// URL such as http://127.0.0.1:8000/v1")
        return
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        checker.fail("base_url", "must be an http:// or https:// URL such as http://127.0.0.1:8000/v1")
    elif parts.query or parts.fragment:
        checker.fail("base_url", "must not carry a query string or fragment")


def _format_instruction(*, ctx: TaskContext) -> str:
    if _expects_verdict(ctx=ctx):
        return VERDICT_INSTRUCTION
    if _expects_result(ctx=ctx):
        return RESULT_INSTRUCTION
    return ""


def _expects_verdict(*, ctx: TaskContext) -> bool:
    return reviewing(ctx)


def _expects_result(*, ctx: TaskContext) -> bool:
    return ctx.role in CHECK_ROLES or ctx.step in CHECK_STEPS


def _is_marker_line(line: str) -> bool:
    return bool(VERDICT_LINE.match(line) or RESULT_LINE.match(line))


def _verdict_word(word: str) -> Outcome | None:
    key = re.sub(r"[\s-]+", "_", word.strip().lower())
    return VERDICT_WORDS.get(key)


def _last_json_value(*, content: str, key: str) -> str | None:
    """The string under `key` in the last JSON object embedded in the reply."""
    decoder = json.JSONDecoder()
    found = None
    for match in re.finditer(r"\{", content):
        try:
            parsed, _ = decoder.raw_decode(content, match.start())
        except ValueError:
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get(key), str):
            found = parsed[key]
    return found


def _usage(reply: dict) -> tuple[int, int]:
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: Any) -> int:
    return int(value) if is_number(value) and value >= 0 else 0
