"""Ask an OpenAI-compatible chat completions endpoint to do a task."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .base import (
    DECIMAL_SCHEMA,
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
    token_cost,
)

OUTPUT_LIMIT_BYTES = 16 * 1024
PROMPT_TEXT_LIMIT_BYTES = 64 * 1024
RESPONSE_LIMIT_BYTES = 8 * 1024 * 1024
ERROR_EXCERPT_CHARS = 300
# httpx limits each network phase; this slack lets its clearer errors win before the overall cap
DEADLINE_SLACK_S = 1.0
POLL_INTERVAL_S = 0.05

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
REVIEW_ROLES = frozenset({"reviewer"})
REVIEW_STEPS = frozenset({"review"})
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


class CallFailed(Exception):
    """A readable reason the endpoint could not give an answer."""


class LLMRuntime(Runtime):
    kind: ClassVar[str] = "llm"

    # What validate_config accepts, for the published API schema.
    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "model"],
        "properties": {
            "base_url": {"type": "string", "pattern": r"^https?://[^/?#\x00\s\[\]]+(/[^?#\x00]*)?$"},
            "model": {"type": "string", "pattern": r"^[^\x00]*[^\x00\s][^\x00]*$"},
            "api_key_env": {"type": "string", "pattern": r"^([A-Za-z_][A-Za-z0-9_]*)?$"},
            "timeout": {"type": "number", "minimum": 1, "maximum": 3600},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "input_price_per_1k": DECIMAL_SCHEMA,
            "output_price_per_1k": DECIMAL_SCHEMA,
            "system_prompt": {"type": "string"},
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
        url = f"{self.config['base_url']}/chat/completions"
        payload = self.request_body(ctx=ctx)
        timeout = self.config["timeout"]
        try:
            reply = call_with_deadline(
                fn=lambda: post_chat(url=url, headers=headers, payload=payload, timeout=timeout),
                cancel=cancel,
                deadline_s=timeout + DEADLINE_SLACK_S,
            )
        except CallFailed as exc:
            return self.failed(error=str(exc), duration_s=time.monotonic() - started)
        return self._result(ctx=ctx, reply=reply, duration=time.monotonic() - started)

    def request_body(self, *, ctx: TaskContext) -> dict[str, Any]:
        return {
            "model": self.config["model"],
            "messages": [
                {"role": "system", "content": system_prompt(ctx=ctx, custom=self.config["system_prompt"])},
                {"role": "user", "content": user_prompt(ctx=ctx)},
            ],
            "temperature": self.config["temperature"],
            "max_tokens": self.config["max_tokens"],
        }

    def _result(self, *, ctx: TaskContext, reply: dict, duration: float) -> RuntimeResult:
        content = _message_content(reply)
        if content is None:
            return self.failed(error="response has no choices[0].message.content", duration_s=duration)
        tokens_in, tokens_out = _usage(reply)
        cost = token_cost(tokens=tokens_in, price_per_1k=Decimal(self.config["input_price_per_1k"])) + token_cost(
            tokens=tokens_out, price_per_1k=Decimal(self.config["output_price_per_1k"])
        )
        outcome, summary, error = judge_reply(ctx=ctx, content=content)
        return RuntimeResult(
            outcome=outcome,
            summary=summary,
            output=bound_text(content, limit=OUTPUT_LIMIT_BYTES),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            duration_s=round(duration, 3),
            error=error,
        )


def auth_headers(*, api_key_env: str) -> tuple[dict[str, str], str]:
    """Read the key at run time so it is never stored with the config."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if not api_key_env:
        return headers, ""
    key = os.environ.get(api_key_env, "")
    if not key:
        return headers, f"environment variable {api_key_env} is not set"
    headers["Authorization"] = f"Bearer {key}"
    return headers, ""


def system_prompt(*, ctx: TaskContext, custom: str) -> str:
    brief = custom.strip() or ROLE_BRIEFS.get(ctx.role, f"You are the {ctx.role} on a software delivery team.")
    parts = [brief, "Be concrete and concise; the next agent acts on your answer."]
    instruction = _format_instruction(ctx=ctx)
    if instruction:
        parts.append(instruction)
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


def post_chat(*, url: str, headers: dict[str, str], payload: dict, timeout: float) -> dict:
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url, json=payload, headers=headers) as response,
        ):
            raw = _read_bounded(response=response)
    except httpx.ConnectError as exc:
        raise CallFailed(f"cannot connect to {url}: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise CallFailed(f"timed out after {timeout:g} s waiting for {url}") from exc
    except httpx.HTTPError as exc:
        raise CallFailed(f"request to {url} failed: {exc}") from exc
    excerpt = _excerpt(raw)
    if not response.is_success:
        raise CallFailed(f"HTTP {response.status_code} from {url}: {excerpt}")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CallFailed(f"response from {url} is not JSON: {excerpt}") from exc
    if not isinstance(data, dict):
        raise CallFailed(f"response from {url} is not a JSON object: {excerpt}")
    return data


def call_with_deadline(*, fn: Callable[[], Any], cancel: threading.Event | None, deadline_s: float) -> Any:
    """Run a blocking call in a thread so a cancel or the overall deadline returns at once."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="hive-llm-call", daemon=True).start()
    deadline = time.monotonic() + deadline_s
    while not done.wait(POLL_INTERVAL_S):
        if cancel is not None and cancel.is_set():
            raise CallFailed("cancelled")
        if time.monotonic() >= deadline:
            raise CallFailed(f"timed out after {deadline_s - DEADLINE_SLACK_S:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


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
    return ctx.role in REVIEW_ROLES or ctx.step in REVIEW_STEPS


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


def _message_content(reply: dict) -> str | None:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _usage(reply: dict) -> tuple[int, int]:
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: Any) -> int:
    return int(value) if is_number(value) and value >= 0 else 0


def _read_bounded(*, response: httpx.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > RESPONSE_LIMIT_BYTES:
            raise CallFailed(f"response larger than {RESPONSE_LIMIT_BYTES // (1024 * 1024)} MiB")
    return bytes(body)


def _excerpt(raw: bytes) -> str:
    text = raw[: ERROR_EXCERPT_CHARS * 4].decode("utf-8", errors="replace").strip()
    return clip(" ".join(text.split()), limit=ERROR_EXCERPT_CHARS) or "(empty body)"
