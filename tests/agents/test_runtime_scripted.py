import threading
import time
from decimal import Decimal

import pytest

from agents.runtimes import Outcome, RuntimeConfigError, TaskContext, build_runtime, validate_runtime_config


def make_ctx(**overrides) -> TaskContext:
    fields = {
        "task_id": 1,
        "attempt": 1,
        "title": "Review the greeting endpoint",
        "description": "",
        "role": "reviewer",
        "step": "review",
        "pattern": "feature_delivery",
        "workspace": "/tmp/unused",
    }
    return TaskContext(**(fields | overrides))


def comparable(result) -> dict:
    data = result.as_dict()
    data.pop("duration_s")
    return data


def test_same_context_gives_same_result():
    runtime = build_runtime(
        "scripted", {"seed": 3, "failure_rate": 0.5, "tokens": [100, 900], "cost_per_1k_tokens": "0.002"}
    )
    ctx = make_ctx(role="developer", step="implement")

    first, second = runtime.run(ctx), runtime.run(ctx)

    assert comparable(first) == comparable(second)
    assert 100 <= first.tokens_in + first.tokens_out <= 900
    assert first.cost_usd == (Decimal(first.tokens_in + first.tokens_out) / 1000 * Decimal("0.002")).quantize(
        Decimal("0.000001")
    )


def test_every_result_is_simulated():
    runtime = build_runtime("scripted", {})

    result = runtime.run(make_ctx())

    assert runtime.simulated is True
    assert result.simulated is True
    assert result.outcome is Outcome.SUCCESS
    assert result.as_dict()["simulated"] is True


def test_script_follows_rounds_and_repeats_the_last_entry():
    runtime = build_runtime("scripted", {"script": {"review": ["changes_requested", "changes_requested", "success"]}})

    outcomes = [runtime.run(make_ctx(round=number)).outcome for number in range(1, 6)]

    assert outcomes == [
        Outcome.CHANGES_REQUESTED,
        Outcome.CHANGES_REQUESTED,
        Outcome.SUCCESS,
        Outcome.SUCCESS,
        Outcome.SUCCESS,
    ]


def test_default_summaries_read_well():
    runtime = build_runtime("scripted", {"script": {"review": ["changes_requested"], "merge": ["conflict"]}})

    assert runtime.run(make_ctx()).summary == "[simulated] reviewer requested changes on round 1"
    assert runtime.run(make_ctx(role="developer", step="merge")).summary == (
        "[simulated] developer hit a merge conflict during merge"
    )


def test_custom_summary_per_step():
    runtime = build_runtime("scripted", {"summaries": {"review": "Reviewed: naming fixes needed"}})

    assert runtime.run(make_ctx()).summary == "Reviewed: naming fixes needed"


def test_failure_rate_is_reproducible_per_task_and_attempt():
    runtime = build_runtime("scripted", {"seed": 11, "failure_rate": 0.5})

    def outcomes() -> list[Outcome]:
        return [
            runtime.run(make_ctx(task_id=task_id, attempt=attempt, step="implement", role="developer")).outcome
            for task_id in range(40)
            for attempt in (1, 2)
        ]

    first = outcomes()
    assert first == outcomes()
    assert Outcome.FAILURE in first and Outcome.SUCCESS in first


def test_failure_rate_extremes_and_scripted_steps_are_exempt():
    always = build_runtime("scripted", {"failure_rate": 1, "script": {"review": ["success"]}})

    assert always.run(make_ctx(step="implement")).outcome is Outcome.FAILURE
    assert always.run(make_ctx(step="review")).outcome is Outcome.SUCCESS


def test_different_seeds_change_the_dice():
    rolls = {
        seed: [
            build_runtime("scripted", {"seed": seed, "failure_rate": 0.5}).run(make_ctx(task_id=n, step="x")).outcome
            for n in range(30)
        ]
        for seed in (1, 2)
    }

    assert rolls[1] != rolls[2]


def test_duration_is_slept():
    runtime = build_runtime("scripted", {"duration_s": [0.05, 0.1]})

    started = time.monotonic()
    result = runtime.run(make_ctx())

    assert 0.05 <= time.monotonic() - started < 1
    assert result.outcome is Outcome.SUCCESS


def test_cancel_during_duration_ends_at_once():
    runtime = build_runtime("scripted", {"duration_s": 30})
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()

    started = time.monotonic()
    result = runtime.run(make_ctx(), cancel=cancel)

    assert time.monotonic() - started < 1
    assert result.outcome is Outcome.FAILURE
    assert result.error == "cancelled"
    assert result.simulated is True


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"seed": "abc"}, "seed"),
        ({"duration_s": -1}, "duration_s"),
        ({"duration_s": [3, 1]}, "duration_s"),
        ({"duration_s": [1, 2, 3]}, "duration_s"),
        ({"script": {"review": ["approved"]}}, "script"),
        ({"script": {"review": []}}, "script"),
        ({"script": ["success"]}, "script"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"tokens": [10]}, "tokens"),
        ({"tokens": [50, 10]}, "tokens"),
        ({"cost_per_1k_tokens": "free"}, "cost_per_1k_tokens"),
        ({"summaries": {"review": 3}}, "summaries"),
        ({"outcome": "success"}, "outcome"),
    ],
)
def test_config_errors_name_the_field(config, field):
    with pytest.raises(RuntimeConfigError) as excinfo:
        validate_runtime_config("scripted", config)

    assert field in excinfo.value.errors


def test_config_defaults():
    assert validate_runtime_config("scripted", None) == {
        "seed": 0,
        "duration_s": 0,
        "script": {},
        "failure_rate": 0,
        "tokens": [0, 0],
        "cost_per_1k_tokens": "0",
        "summaries": {},
    }
