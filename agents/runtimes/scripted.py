"""Deterministic playback of agent work for demos, tests and benchmarks."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal
from typing import Any, ClassVar

from .base import (
    DECIMAL_SCHEMA,
    ConfigChecker,
    Outcome,
    Runtime,
    RuntimeResult,
    TaskContext,
    is_number,
    token_cost,
)

MAX_DURATION_S = 3600
OUTCOME_NAMES = [str(outcome) for outcome in Outcome]


class ScriptedRuntime(Runtime):
    kind: ClassVar[str] = "scripted"
    simulated: ClassVar[bool] = True
    # What validate_config accepts, for the published API schema ([min, max] pairs must also be ordered).
    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "seed": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
            "duration_s": {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S, "description": "or [min, max]"},
            "script": {
                "type": "object",
                "additionalProperties": {"type": "array", "minItems": 1, "items": {"enum": OUTCOME_NAMES}},
            },
            "failure_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "cost_per_1k_tokens": DECIMAL_SCHEMA,
            "summaries": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }

    @classmethod
    def validate_config(cls, config: dict) -> dict:
        checker = ConfigChecker(
            config,
            allowed={"seed", "duration_s", "script", "failure_rate", "tokens", "cost_per_1k_tokens", "summaries"},
        )
        clean = {
            "seed": checker.integer("seed", default=0, minimum=-(2**63), maximum=2**63 - 1),
            "duration_s": _check_duration(checker),
            "script": _check_script(checker),
            "failure_rate": checker.number("failure_rate", default=0, minimum=0, maximum=1),
            "tokens": _check_tokens(checker),
            "cost_per_1k_tokens": checker.decimal("cost_per_1k_tokens", default="0"),
            "summaries": checker.text_map("summaries", default={}),
        }
        checker.check()
        return clean

    def run(self, ctx: TaskContext, *, cancel: threading.Event | None = None) -> RuntimeResult:
        started = time.monotonic()
        # one seeded stream per task attempt, drawn in a fixed order, so replays match exactly
        rng = random.Random(f"{self.config['seed']}:{ctx.task_id}:{ctx.attempt}")
        roll = rng.random()
        tokens = rng.randint(*self.config["tokens"])
        duration = self._duration(rng=rng)
        if _interrupted(cancel=cancel, duration=duration):
            return self.failed(error="cancelled", duration_s=time.monotonic() - started)
        outcome = self._outcome(ctx=ctx, roll=roll)
        tokens_in = tokens * 3 // 4
        return RuntimeResult(
            outcome=outcome,
            summary=self.config["summaries"].get(ctx.step) or default_summary(ctx=ctx, outcome=outcome),
            output=f"[simulated] {ctx.role} ran {ctx.step} for task #{ctx.task_id}: {outcome}",
            tokens_in=tokens_in,
            tokens_out=tokens - tokens_in,
            cost_usd=token_cost(tokens=tokens, price_per_1k=Decimal(self.config["cost_per_1k_tokens"])),
            simulated=True,
            duration_s=round(time.monotonic() - started, 3),
        )

    def _outcome(self, *, ctx: TaskContext, roll: float) -> Outcome:
        plan = self.config["script"].get(ctx.step)
        if plan:
            # the last scripted outcome repeats for every later round
            return Outcome(plan[min(max(ctx.round, 1), len(plan)) - 1])
        return Outcome.FAILURE if roll < self.config["failure_rate"] else Outcome.SUCCESS

    def _duration(self, *, rng: random.Random) -> float:
        duration = self.config["duration_s"]
        if isinstance(duration, list):
            return rng.uniform(*duration)
        return float(duration)


def default_summary(*, ctx: TaskContext, outcome: Outcome) -> str:
    phrases = {
        Outcome.SUCCESS: f"{ctx.role} completed {ctx.step} on round {ctx.round}",
        Outcome.FAILURE: f"{ctx.role} failed {ctx.step} on attempt {ctx.attempt}",
        Outcome.CHANGES_REQUESTED: f"{ctx.role} requested changes on round {ctx.round}",
        Outcome.CONFLICT: f"{ctx.role} hit a merge conflict during {ctx.step}",
    }
    return f"[simulated] {phrases[outcome]}"


def _interrupted(*, cancel: threading.Event | None, duration: float) -> bool:
    """Sleep for the simulated work; a cancel cuts the wait short."""
    if cancel is None:
        if duration > 0:
            time.sleep(duration)
        return False
    return cancel.wait(duration) if duration > 0 else cancel.is_set()


def _check_duration(checker: ConfigChecker) -> float | list[float]:
    value: Any = checker.raw.get("duration_s", 0)
    if is_number(value) and 0 <= value <= MAX_DURATION_S:
        return value
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(is_number(item) for item in value)
        and 0 <= value[0] <= value[1] <= MAX_DURATION_S
    ):
        return list(value)
    checker.fail("duration_s", f"must be seconds or [min, max] with 0 <= min <= max <= {MAX_DURATION_S}")
    return 0


def _check_tokens(checker: ConfigChecker) -> list[int]:
    value: Any = checker.raw.get("tokens", [0, 0])
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
        and 0 <= value[0] <= value[1]
    ):
        return list(value)
    checker.fail("tokens", "must be [min, max] whole numbers with 0 <= min <= max")
    return [0, 0]


def _check_script(checker: ConfigChecker) -> dict[str, list[str]]:
    value: Any = checker.raw.get("script", {})
    if not isinstance(value, dict):
        checker.fail("script", "must map step keys to lists of outcomes")
        return {}
    for step, plan in value.items():
        if not isinstance(plan, list) or not plan:
            checker.fail("script", f"step {step!r} needs a non-empty list of outcomes")
            return {}
        unknown = [item for item in plan if item not in OUTCOME_NAMES]
        if unknown:
            checker.fail(
                "script", f"step {step!r} has unknown outcome {unknown[0]!r}; choose from {', '.join(OUTCOME_NAMES)}"
            )
            return {}
    return {str(step): list(plan) for step, plan in value.items()}
