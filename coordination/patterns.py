"""Collaboration patterns, declared as data and read by one small interpreter.

A pattern is a table of steps. Each step names the role that does it and, for
every outcome its runtime can report, where the work goes next. Loops carry a
counter and a bound; past the bound the work either moves on or a human
Decision is raised. The engine never branches on a pattern's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from agents.models import Agent

Role = Agent.Role

DONE = "__done__"
FAIL = "__fail__"

SUCCESS = "success"
FAILURE = "failure"
CHANGES_REQUESTED = "changes_requested"
CONFLICT = "conflict"
OUTCOMES = (SUCCESS, FAILURE, CHANGES_REQUESTED, CONFLICT)


@dataclass(frozen=True)
class Escalate:
    """Raise a human Decision of this kind instead of moving on."""

    kind: str


@dataclass(frozen=True)
class Go:
    """Move to `to`. With a counter, count the pass; at `bound` passes go to `otherwise` instead."""

    to: str | Escalate
    counter: str = ""
    bound: int | str = 0  # an int, or the name of a HIVE setting
    otherwise: str | Escalate = FAIL
    note: str = ""

    def limit(self) -> int:
        if isinstance(self.bound, str):
            return int(settings.HIVE[self.bound])
        return self.bound


@dataclass(frozen=True)
class Step:
    key: str
    role: str
    title: str
    weight: Decimal  # share of the workflow's human estimate this step replaces
    on: dict[str, Go]
    event: str = ""  # pattern event emitted when the step finishes
    pair: bool = False  # driver + navigator
    exclude_previous_agent: bool = False  # handoff: give the work to someone else
    gate: str = ""  # a Decision kind that must be approved before the step runs (if its switch is on)


@dataclass(frozen=True)
class Pattern:
    key: str
    name: str
    description: str
    steps: tuple[Step, ...]
    default_estimate_hours: Decimal = Decimal("8")

    @property
    def first(self) -> Step:
        return self.steps[0]

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(f"pattern {self.key} has no step {key!r}")


@dataclass(frozen=True)
class DecisionOption:
    key: str
    label: str
    action: str  # one of ACTIONS


@dataclass(frozen=True)
class DecisionSpec:
    question: str
    options: tuple[DecisionOption, ...]
    default: str


# What answering a decision does to the blocked task:
#   accept   – finish the task as a success and move on
#   loop     – take the loop again with its counter reset
#   retry    – run the task again with fresh attempts
#   release  – let a gated task run
#   abandon  – cancel the task and its workflow
# What answering a decision about the whole crew (no task) does:
#   note           – nothing but the record (acknowledge; "ignore" is read back by whoever raised it)
#   pause_session  – pause the decision's session: its agents take no new work
ACTIONS = ("accept", "loop", "retry", "release", "abandon", "note", "pause_session")

DECISIONS: dict[str, DecisionSpec] = {
    "review_deadlock": DecisionSpec(
        question="Review of “{title}” is still not approved after {rounds} rounds. What now?",
        options=(
            DecisionOption("approve", "Accept the change as it is", "accept"),
            DecisionOption("another_round", "Give the developer another round", "loop"),
            DecisionOption("abandon", "Stop this work", "abandon"),
        ),
        default="abandon",
    ),
    "retries_exhausted": DecisionSpec(
        question="“{title}” failed {attempts} times ({error}). Retry, skip or stop?",
        options=(
            DecisionOption("retry", "Retry with fresh attempts", "retry"),
            DecisionOption("skip", "Skip this step and move on", "accept"),
            DecisionOption("abandon", "Stop this work", "abandon"),
        ),
        default="abandon",
    ),
    "conflict": DecisionSpec(
        question="The architect could not resolve the conflict in “{title}”. How should it go on?",
        options=(
            DecisionOption("retry", "Let the architect try again", "retry"),
            DecisionOption("accept", "I resolved it by hand; continue", "accept"),
            DecisionOption("abandon", "Stop this work", "abandon"),
        ),
        default="abandon",
    ),
    "deploy_approval": DecisionSpec(
        question="Deploy “{title}”?",
        options=(
            DecisionOption("approve", "Approve the deploy", "release"),
            DecisionOption("reject", "Reject; do not deploy", "abandon"),
        ),
        default="reject",
    ),
    # Raised by metrics.slo when the rolling coordination success falls below the objective.
    "slo_breached": DecisionSpec(
        question="Coordination success is {ratio} over the last {window}, below the objective of {target}. What now?",
        options=(
            DecisionOption("acknowledge", "Acknowledge: someone is looking into it", "note"),
            DecisionOption("pause_session", "Pause the session with the most failures", "pause_session"),
            DecisionOption("ignore", "Ignore further breaches for {ignore_hours} hours", "note"),
        ),
        default="acknowledge",
    ),
}

_fix_loop = Go("implement", counter="fix_rounds", bound="MAX_ATTEMPTS", otherwise=Escalate("retries_exhausted"))
_review_loop = Go(
    "implement", counter="review_rounds", bound="MAX_REVIEW_ROUNDS", otherwise=Escalate("review_deadlock")
)
_conflict = Go("resolve_conflict", counter="conflict_rounds", bound=2, otherwise=Escalate("conflict"))
_resolve = Step(
    key="resolve_conflict",
    role=Role.ARCHITECT,
    title="Resolve the conflict in {title}",
    weight=Decimal("0.05"),
    on={SUCCESS: Go("implement", note="Conflict resolved by the architect"), FAILURE: Go(Escalate("conflict"))},
    event="conflict_resolved",
)

FEATURE_DELIVERY = Pattern(
    key="feature_delivery",
    name="Feature delivery",
    description="Product spec → architecture → implementation → review → test → CI/CD.",
    default_estimate_hours=Decimal("16"),
    steps=(
        Step(
            "spec",
            Role.PRODUCT_MANAGER,
            "Write the product spec for {title}",
            Decimal("0.10"),
            on={SUCCESS: Go("architecture")},
        ),
        Step(
            "architecture",
            Role.ARCHITECT,
            "Design the architecture for {title}",
            Decimal("0.15"),
            on={SUCCESS: Go("implement")},
        ),
        Step(
            "implement",
            Role.DEVELOPER,
            "Implement {title}",
            Decimal("0.40"),
            on={SUCCESS: Go("review"), CONFLICT: _conflict},
        ),
        Step(
            "review",
            Role.REVIEWER,
            "Review {title}",
            Decimal("0.10"),
            on={SUCCESS: Go("test"), CHANGES_REQUESTED: _review_loop},
            event="code_review_cycle",
        ),
        Step("test", Role.TESTER, "Test {title}", Decimal("0.15"), on={SUCCESS: Go("ci"), FAILURE: _fix_loop}),
        Step(
            "ci",
            Role.DEVOPS,
            "Build and deploy {title}",
            Decimal("0.10"),
            on={SUCCESS: Go(DONE), FAILURE: _fix_loop},
            event="ci_pipeline",
            gate="deploy_approval",
        ),
        _resolve,
    ),
)

PAIR_PROGRAMMING = Pattern(
    key="pair_programming",
    name="Pair programming",
    description="Driver and navigator implement together, swapping roles between rounds, then a review.",
    default_estimate_hours=Decimal("6"),
    steps=(
        Step(
            "pair",
            Role.DEVELOPER,
            "Pair on {title}",
            Decimal("0.80"),
            pair=True,
            event="pair_programming",
            on={SUCCESS: Go("pair", counter="pair_rounds", bound=2, otherwise="review"), CONFLICT: _conflict},
        ),
        Step(
            "review",
            Role.REVIEWER,
            "Review {title}",
            Decimal("0.20"),
            event="code_review_cycle",
            on={
                SUCCESS: Go(DONE),
                CHANGES_REQUESTED: Go(
                    "pair", counter="review_rounds", bound="MAX_REVIEW_ROUNDS", otherwise=Escalate("review_deadlock")
                ),
            },
        ),
        Step(
            "resolve_conflict",
            Role.ARCHITECT,
            "Resolve the conflict in {title}",
            Decimal("0.05"),
            event="conflict_resolved",
            on={SUCCESS: Go("pair", note="Conflict resolved by the architect"), FAILURE: Go(Escalate("conflict"))},
        ),
    ),
)

CODE_REVIEW_CYCLE = Pattern(
    key="code_review_cycle",
    name="Code review cycle",
    description="Implement, review; requested changes loop back to the developer, bounded.",
    default_estimate_hours=Decimal("4"),
    steps=(
        Step(
            "implement",
            Role.DEVELOPER,
            "Implement {title}",
            Decimal("0.75"),
            on={SUCCESS: Go("review"), CONFLICT: _conflict},
        ),
        Step(
            "review",
            Role.REVIEWER,
            "Review {title}",
            Decimal("0.25"),
            event="code_review_cycle",
            on={SUCCESS: Go(DONE), CHANGES_REQUESTED: _review_loop},
        ),
        _resolve,
    ),
)

CI_CD = Pattern(
    key="ci_cd",
    name="CI/CD automation",
    description="Test → build → deploy; a failure hands back to the developer with the failing output.",
    default_estimate_hours=Decimal("3"),
    steps=(
        Step(
            "test",
            Role.TESTER,
            "Run the tests for {title}",
            Decimal("0.35"),
            on={SUCCESS: Go("build"), FAILURE: _fix_loop},
            event="ci_pipeline",
        ),
        Step(
            "build",
            Role.DEVOPS,
            "Build {title}",
            Decimal("0.25"),
            on={SUCCESS: Go("deploy"), FAILURE: _fix_loop},
            event="ci_pipeline",
        ),
        Step(
            "deploy",
            Role.DEVOPS,
            "Deploy {title}",
            Decimal("0.25"),
            on={SUCCESS: Go(DONE), FAILURE: _fix_loop},
            event="ci_pipeline",
            gate="deploy_approval",
        ),
        Step(
            "implement",
            Role.DEVELOPER,
            "Fix the pipeline failure in {title}",
            Decimal("0.15"),
            on={SUCCESS: Go("test")},
        ),
    ),
)

TASK_HANDOFF = Pattern(
    key="task_handoff",
    name="Task handoff",
    description="One developer starts the work and hands it, with a context note, to another who finishes it.",
    default_estimate_hours=Decimal("4"),
    steps=(
        Step(
            "start",
            Role.DEVELOPER,
            "Start {title}",
            Decimal("0.50"),
            on={SUCCESS: Go("finish", note="Handed over")},
        ),
        Step(
            "finish",
            Role.DEVELOPER,
            "Finish {title}",
            Decimal("0.50"),
            exclude_previous_agent=True,
            on={SUCCESS: Go(DONE)},
        ),
    ),
)

CONFLICT_RESOLUTION = Pattern(
    key="conflict_resolution",
    name="Conflict resolution",
    description="Merge work that touches shared files; a real conflict goes to the architect, then to a human.",
    default_estimate_hours=Decimal("2"),
    steps=(
        Step(
            "merge",
            Role.DEVELOPER,
            "Merge {title}",
            Decimal("0.70"),
            on={
                SUCCESS: Go(DONE),
                CONFLICT: Go("resolve_conflict", counter="conflict_rounds", bound=2, otherwise=Escalate("conflict")),
            },
        ),
        Step(
            "resolve_conflict",
            Role.ARCHITECT,
            "Resolve the conflict in {title}",
            Decimal("0.30"),
            event="conflict_resolved",
            on={SUCCESS: Go("merge", note="Conflict resolved by the architect"), FAILURE: Go(Escalate("conflict"))},
        ),
    ),
)

PATTERNS: dict[str, Pattern] = {
    p.key: p for p in (FEATURE_DELIVERY, PAIR_PROGRAMMING, CODE_REVIEW_CYCLE, CI_CD, TASK_HANDOFF, CONFLICT_RESOLUTION)
}
PATTERN_CHOICES = [(p.key, p.name) for p in PATTERNS.values()]


def get_pattern(key: str) -> Pattern:
    try:
        return PATTERNS[key]
    except KeyError:
        raise KeyError(f"unknown pattern {key!r}; choose one of {', '.join(PATTERNS)}") from None


# --- The interpreter -------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """What happens after a step reports an outcome."""

    kind: str  # "advance", "done", "fail", "escalate", "retry"
    step: Step | None = None
    escalate: str = ""
    note: str = ""
    state: dict = field(default_factory=dict)
    counter: str = ""  # the loop counter that ran out, for an escalation


def next_move(*, pattern: Pattern, step_key: str, outcome: str, state: dict) -> Move:
    """Where the work goes after `step_key` reported `outcome`.

    Pure: reads the workflow's loop counters from `state` and returns the new
    state with the move; the services apply it. An outcome the step does not
    handle means the step itself must be retried.
    """
    go = pattern.step(step_key).on.get(outcome)
    if go is None:
        return Move("retry", state=dict(state))
    new_state = dict(state)
    target: str | Escalate = go.to
    if go.counter:
        count = int(new_state.get(go.counter, 0)) + 1
        new_state[go.counter] = count
        if count >= go.limit() + int(new_state.get(f"{go.counter}_granted", 0)):
            target = go.otherwise
    if isinstance(target, Escalate):
        return Move("escalate", escalate=target.kind, state=new_state, counter=go.counter)
    if target == DONE:
        return Move("done", state=new_state)
    if target == FAIL:
        return Move("fail", state=new_state)
    return Move("advance", step=pattern.step(target), note=go.note, state=new_state)


def loop_grant(*, pattern: Pattern, step_key: str, outcome: str, state: dict) -> dict:
    """State for re-applying `outcome` after a human granted one more pass through its loop.

    The outcome was already counted when it escalated, so that count is taken back.
    """
    go = pattern.step(step_key).on.get(outcome)
    new_state = dict(state)
    if go is not None and go.counter:
        new_state[go.counter] = max(0, int(new_state.get(go.counter, 0)) - 1)
        key = f"{go.counter}_granted"
        new_state[key] = int(new_state.get(key, 0)) + 1
    return new_state


def step_estimate(*, pattern: Pattern, step: Step, workflow_estimate: Decimal) -> Decimal:
    """Human hours this step replaces: its weight of the workflow's estimate."""
    return (workflow_estimate * step.weight).quantize(Decimal("0.01"))
