"""Talking to an OpenAI-compatible chat completions endpoint: one call, bounded, cancellable, streamed."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from .base import clip

RESPONSE_LIMIT_BYTES = 8 * 1024 * 1024
ERROR_EXCERPT_CHARS = 300
# httpx limits each network phase; this slack lets its clearer errors win before the overall cap
DEADLINE_SLACK_S = 1.0
POLL_INTERVAL_S = 0.05


class CallFailed(Exception):
    """A readable reason the endpoint could not give an answer."""


def auth_headers(*, api_key_env: str) -> tuple[dict[str, str], str]:
    """Read the key at run time so it is never stored with the config."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if not api_key_env:
        return headers, ""
    key = os.environ.get(api_key_env, "")
    if not key:
        return headers, f"environment variable {api_key_env} is not set"
    headers["Authorization"] = f"Bearer {key}"
    return headers, ""


def post_chat(
    *, url: str, headers: dict[str, str], payload: dict, timeout: float, on_text: Callable[[str], None] | None = None
) -> dict:
    """The endpoint's answer as a chat completion object.

    A streamed answer (server-sent events) is passed to `on_text` piece by piece as it arrives
    and assembled into the same shape as a plain one, usage included when the server sends it.
    """
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url, json=payload, headers=headers) as response,
        ):
            if response.is_success and response.headers.get("content-type", "").startswith("text/event-stream"):
                return _read_stream(response=response, url=url, on_text=on_text)
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
    content = _message_content(data)
    if on_text is not None and content:
        on_text(content)
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


def _read_stream(*, response: httpx.Response, url: str, on_text: Callable[[str], None] | None) -> dict:
    parts: list[str] = []
    size = 0
    usage: dict | None = None
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        size += len(data)
        if size > RESPONSE_LIMIT_BYTES:
            raise CallFailed(f"response larger than {RESPONSE_LIMIT_BYTES // (1024 * 1024)} MiB")
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise CallFailed(f"stream from {url} carried an event that is not JSON: {clip(data, limit=80)}") from exc
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("error"), dict | str):
            raise CallFailed(f"stream from {url} ended with an error: {clip(json.dumps(chunk['error']), limit=200)}")
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        text = _delta_content(chunk)
        if text:
            parts.append(text)
            if on_text is not None:
                on_text(text)
    reply: dict[str, Any] = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)}}]}
    if usage is not None:
        reply["usage"] = usage
    return reply


def _delta_content(chunk: dict) -> str:
    try:
        text = chunk["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return text if isinstance(text, str) else ""


def _message_content(reply: dict) -> str | None:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


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
