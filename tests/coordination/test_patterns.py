"""The pattern interpreter is pure: outcome + loop counters in, move out."""

import pytest

from coordination import patterns
from coordination.patterns import CHANGES_REQUESTED, CONFLICT, FAILURE, SUCCESS, next_move


def test_every_pattern_is_well_formed():
    for pattern in patterns.PATTERNS.values():
        keys = {step.key for step in pattern.steps}
        assert len(keys) == len(pattern.steps), pattern.key
        for step in pattern.steps:
            assert step.on, f"{pattern.key}.{step.key} has no transitions"
            for go in step.on.values():
                for target in (go.to, go.otherwise):
                    if isinstance(target, str) and target not in (patterns.DONE, patterns.FAIL):
                        assert target in keys, f"{pattern.key}.{step.key} → unknown step {target}"
                    if isinstance(target, patterns.Escalate):
                        assert target.kind in patterns.DECISIONS
            if step.gate:
                assert step.gate in patterns.DECISIONS
        assert sum(s.weight for s in pattern.steps if s.key != "resolve_conflict") <= 1


def test_feature_delivery_happy_path_visits_every_stage_in_order():
    pattern = patterns.FEATURE_DELIVERY
    step, state, visited = pattern.first.key, {}, []
    while True:
        visited.append(step)
        move = next_move(pattern=pattern, step_key=step, outcome=SUCCESS, state=state)
        state = move.state
        if move.kind == "done":
            break
        assert move.kind == "advance"
        step = move.step.key
    assert visited == ["spec", "architecture", "implement", "review", "test", "ci"]


@pytest.mark.parametrize("bound", [1, 2, 3])
def test_review_loop_escalates_at_its_bound(settings, bound):
    settings.HIVE = {**settings.HIVE, "MAX_REVIEW_ROUNDS": bound}
    state = {}
    for _ in range(bound - 1):
        move = next_move(pattern=patterns.CODE_REVIEW_CYCLE, step_key="review", outcome=CHANGES_REQUESTED, state=state)
        assert move.kind == "advance" and move.step.key == "implement"
        state = move.state
    move = next_move(pattern=patterns.CODE_REVIEW_CYCLE, step_key="review", outcome=CHANGES_REQUESTED, state=state)
    assert move.kind == "escalate" and move.escalate == "review_deadlock"
    assert move.state["review_rounds"] == bound


def test_pair_programming_swaps_for_a_second_round_then_goes_to_review():
    first = next_move(pattern=patterns.PAIR_PROGRAMMING, step_key="pair", outcome=SUCCESS, state={})
    assert (first.kind, first.step.key) == ("advance", "pair")
    second = next_move(pattern=patterns.PAIR_PROGRAMMING, step_key="pair", outcome=SUCCESS, state=first.state)
    assert (second.kind, second.step.key) == ("advance", "review")


def test_ci_failure_hands_back_to_the_developer():
    move = next_move(pattern=patterns.CI_CD, step_key="build", outcome=FAILURE, state={})
    assert move.kind == "advance" and move.step.key == "implement" and move.step.role == "developer"


def test_conflict_goes_to_the_architect_and_unresolvable_one_to_a_human():
    move = next_move(pattern=patterns.CONFLICT_RESOLUTION, step_key="merge", outcome=CONFLICT, state={})
    assert move.step.role == "architect"
    move = next_move(pattern=patterns.CONFLICT_RESOLUTION, step_key="resolve_conflict", outcome=FAILURE, state={})
    assert move.kind == "escalate" and move.escalate == "conflict"


def test_unhandled_outcome_means_retry_and_keeps_state():
    move = next_move(pattern=patterns.FEATURE_DELIVERY, step_key="spec", outcome=FAILURE, state={"x": 1})
    assert move.kind == "retry" and move.state == {"x": 1}


def test_a_granted_pass_allows_exactly_one_more_loop(settings):
    settings.HIVE = {**settings.HIVE, "MAX_REVIEW_ROUNDS": 2}
    pattern = patterns.CODE_REVIEW_CYCLE
    state = {"review_rounds": 2, "fix_rounds": 1}
    granted = patterns.loop_grant(pattern=pattern, step_key="review", outcome=CHANGES_REQUESTED, state=state)
    assert granted == {"review_rounds": 1, "review_rounds_granted": 1, "fix_rounds": 1}
    move = next_move(pattern=pattern, step_key="review", outcome=CHANGES_REQUESTED, state=granted)
    assert move.kind == "advance" and move.state["review_rounds"] == 2
    move = next_move(pattern=pattern, step_key="review", outcome=CHANGES_REQUESTED, state=move.state)
    assert move.kind == "escalate"


def test_unknown_pattern_names_the_choices():
    with pytest.raises(KeyError, match="feature_delivery"):
        patterns.get_pattern("waterfall")
