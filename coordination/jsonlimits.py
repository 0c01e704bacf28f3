"""Limits of JSON taken from outside: nesting depth and NUL characters.

JSON nested thousands of levels deep makes Python's parser and encoder recurse
until RecursionError, and PostgreSQL's jsonb refuses NUL characters. Every entry
point (API bodies, team files, console and admin forms, input serializers) checks
JSON here, so each refuses the same input with the same message, naming the field.
"""

from __future__ import annotations

import json
from typing import Any

# Deeper JSON than this is refused: no setting needs it, and recursion in parsers and encoders stays bounded.
MAX_JSON_DEPTH = 32


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str:
    """What makes `value` unfit to store as JSON ("" when nothing): too deep, or NUL characters.

    Walks iteratively, so a hostile depth cannot exhaust the stack. PostgreSQL's jsonb refuses NUL.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep" + (f" (at {path})" if path else "")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and "\x00" in key:
                    return "keys must not contain NUL characters" + (f" (at {path})" if path else "")
                child_path = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
                stack.append((child, child_path.lstrip("."), depth + 1))
        elif isinstance(item, str) and "\x00" in item:
            return "must not contain NUL characters" + (f" (at {path})" if path else "")
    return ""


class JSONNestingError(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH; `field` is the top-level key it happened under."""

    def __init__(self, field: str):
        self.field = field or "body"
        super().__init__(f"nested more than {MAX_JSON_DEPTH} levels deep")


def json_loads(text: str | bytes) -> Any:
    """json.loads that refuses nesting deeper than MAX_JSON_DEPTH with JSONNestingError, never RecursionError."""
    try:
        value = json.loads(text)
    except RecursionError:
        text = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise JSONNestingError(_deep_field(text)) from None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and "nested more than" in json_problem(item, max_depth=MAX_JSON_DEPTH):
                raise JSONNestingError(key)
    elif isinstance(value, list) and "nested more than" in json_problem(value, max_depth=MAX_JSON_DEPTH):
        raise JSONNestingError("")
    return value


def _deep_field(text: str) -> str:
    """The top-level key under which `text` first nests past MAX_JSON_DEPTH (a scan that needs no recursion)."""
    depth, in_string, escaped = 0, False, False
    key, last_string, start = "", "", 0
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                last_string = text[start:index]
            continue
        if char == '"':
            in_string, start = True, index + 1
        elif char == ":" and depth == 1:
            key = last_string
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH + 1:
                return key
        elif char in "]}":
            depth -= 1
    return key
