"""Keep secrets out of events and logs.

What counts as secret: the values of environment variables a runtime config names (its
`env_allow` list, its `api_key_env`, its `env` entries that look secret), the values of
this process's variables whose names say they are secret (SECRET_KEY, *_TOKEN, *_API_KEY,
*PASSWORD*), the value of any key such as "password" or "api_key" in structured data, and
credentials in text ("Authorization: Token …", "password=…").

Plain Python, no Django: runtimes register the configs they validate from worker threads,
and the event builder and the logging filter read the same registry.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
# Shorter values are too likely to occur in ordinary text ("1", "dev") to be replaced everywhere.
MIN_SECRET_LENGTH = 6
# An `env` entry of a runtime config is secret when its name says so, or when its value is this long
# (an opaque key); short plain values such as MODE=fast stay readable.
OPAQUE_VALUE_LENGTH = 16
# Variables a command runtime passes on by default: paths and locale, not secrets.
HARMLESS_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "PWD", "USER"})

SECRET_NAME = re.compile(r"pass(word|wd)|secret|api_?key|private_?key|credential|(^|_)(pass|auth|token)($|_)", re.I)
# Keys of structured data whose values are never written (token counts such as "tokens_in" are not secrets).
SECRET_KEY = re.compile(
    r"^(.*_)?(password|passwd|secret|api_?key|private_?key|credentials?|authorization|token_secret)$", re.I
)
# Credentials in text: an Authorization header's value, and "password=…"-style pairs.
SECRET_HEADER = re.compile(r"(?P<lead>\b(?:Token|Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{16,}")
SECRET_PAIR = re.compile(r"(?P<lead>\b(?:password|passwd|secret|api_?key|token)\s*[=:]\s*)[^\s,;&\"']{4,}", re.I)


class _Registry:
    """The secret values this process knows; one compiled pattern, rebuilt when a value is added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern | None = None
        self._environ_loaded = False

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH} - self._values
        if not new:
            return
        with self._lock:
            values = self._values | new
            # Longest first, so a secret containing another is replaced whole.
            ordered = sorted(values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            self._values = frozenset(values)

    def pattern(self) -> re.Pattern | None:
        if not self._environ_loaded:
            self._environ_loaded = True
            self.add(value for name, value in os.environ.items() if SECRET_NAME.search(name))
        return self._pattern

    def values(self) -> frozenset[str]:
        self.pattern()
        return self._values


_registry = _Registry()


def config_secrets(config: Mapping[str, Any] | None, *, environ: Mapping[str, str] | None = None) -> set[str]:
    """The secret values a runtime config names: its allowed variables' values, its key's, its secret-looking env."""
    if not isinstance(config, Mapping):
        return set()
    environ = os.environ if environ is None else environ
    names = [name for name in config.get("env_allow") or [] if isinstance(name, str)]
    if isinstance(config.get("api_key_env"), str):
        names.append(config["api_key_env"])
    values = {environ.get(name, "") for name in names if name and name not in HARMLESS_ENV}
    env = config.get("env")
    if isinstance(env, Mapping):
        values |= {
            value
            for name, value in env.items()
            if isinstance(value, str) and (SECRET_NAME.search(str(name)) or len(value) >= OPAQUE_VALUE_LENGTH)
        }
    return {value for value in values if len(value) >= MIN_SECRET_LENGTH}


def secrets_remember(config: Mapping[str, Any] | None) -> None:
    """Register what a runtime config names, so events and logs written from now on never carry it."""
    _registry.add(config_secrets(config))


def secret_values_remember(values: Iterable[str]) -> None:
    _registry.add(values)


# Words without which neither text pattern can match: most texts skip both regular expressions.
_TEXT_HINTS = ("token", "bearer", "basic", "pass", "secret", "key")


def redact_text(text: str) -> str:
    if not text:
        return text
    pattern = _registry.pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    lowered = text.lower()
    if any(hint in lowered for hint in _TEXT_HINTS):
        text = SECRET_HEADER.sub(rf"\g<lead>{REDACTED}", text)
        text = SECRET_PAIR.sub(rf"\g<lead>{REDACTED}", text)
    return text


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return SECRET_KEY.match(key) is not None


def redact(value: Any) -> Any:
    """`value` with secrets replaced: in strings, and whole values under secret-looking keys. Returns new containers."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and _secret_key(key) and item not in (None, "") else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """Replaces secrets in a record's message (arguments merged in) and in its formatted traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it for the handler to report
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


_filter = RedactingFilter()
_installed = False


def install_log_redaction() -> None:
    """Redact every log record as it is made, whichever logger and handler it goes to (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _filter.filter(record)
        return record

    logging.setLogRecordFactory(redacting_record)
