"""How an agent executes one task: run a program, ask a model, or play back a script.

Pure Python with no Django model imports, so the coordinator can call runtimes from worker threads.
"""

from __future__ import annotations

from ..redaction import secrets_remember
from .base import Outcome, Runtime, RuntimeConfigError, RuntimeResult, TaskContext
from .command import CommandRuntime
from .llm import LLMRuntime
from .presets import PRESETS, PresetRuntime
from .scripted import ScriptedRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    CommandRuntime.kind: CommandRuntime,
    LLMRuntime.kind: LLMRuntime,
    ScriptedRuntime.kind: ScriptedRuntime,
}

__all__ = [
    "RUNTIMES",
    "CommandRuntime",
    "LLMRuntime",
    "PRESETS",
    "PresetRuntime",
    "Outcome",
    "Runtime",
    "RuntimeConfigError",
    "RuntimeResult",
    "ScriptedRuntime",
    "TaskContext",
    "build_runtime",
    "validate_runtime_config",
]


def runtime_class_for(kind: str, config: dict | None) -> type[Runtime]:
    """The class that runs `kind` with `config`: a command config naming a preset is a PresetRuntime."""
    runtime_class = RUNTIMES.get(kind)
    if runtime_class is None:
        choices = ", ".join(sorted(RUNTIMES))
        raise RuntimeConfigError({"runtime": f"unknown runtime {kind!r}; choose one of {choices}"})
    if runtime_class is CommandRuntime and isinstance(config, dict) and "preset" in config:
        return PresetRuntime
    return runtime_class


def validate_runtime_config(kind: str, config: dict | None) -> dict:
    """The normalised config for `kind`, or RuntimeConfigError naming every bad field."""
    clean = runtime_class_for(kind, config).validate_config({} if config is None else config)
    # The variables it names are secrets from now on: never written into events or logs.
    secrets_remember(clean)
    return clean


def build_runtime(kind: str, config: dict | None) -> Runtime:
    return runtime_class_for(kind, config)(validate_runtime_config(kind, config))
