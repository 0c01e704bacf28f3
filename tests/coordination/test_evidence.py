"""Decisions and hand-backs quote the line that shows the failure, with the true number of failed rounds."""

from __future__ import annotations

import sys

from coordination.evidence import failure_evidence
from coordination.models import Decision, Task
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from tests.conftest import scripted

PYTEST_OUTPUT = """============================= test session starts ==============================
platform linux -- Python 3.11.2, pytest-8.3.0
collected 3 items

tests/test_calc.py ..F                                                   [100%]

=================================== FAILURES ===================================
___________________________________ test_add ___________________________________
    def test_add():
>       assert add(1, 2) == 4
E       assert 3 == 4
E        +  where 3 = add(1, 2)

tests/test_calc.py:9: AssertionError
=============================== warnings summary ===============================
calc.py:1: DeprecationWarning: the imp module is deprecated
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_add - assert 3 == 4
========================= 1 failed, 2 passed in 0.05s =========================
"""


def test_the_failing_assertion_is_picked_over_warnings_and_summaries():
    assert failure_evidence(output=PYTEST_OUTPUT, summary="exit code 1") == "assert 3 == 4"
    assert failure_evidence(output="app.py:3:1: F401 'os' imported but unused\n", summary="x") == (
        "app.py:3:1: F401 'os' imported but unused"
    )
    assert failure_evidence(output="ValueError: bad coupon code\n") == "ValueError: bad coupon code"
    assert failure_evidence(output="all good\n", summary="exit code 2") == "exit code 2"


def test_a_test_loop_that_runs_out_says_how_many_rounds_failed_and_why(workspace, drive, settings):
    settings.HIVE = {**settings.HIVE, "MAX_ATTEMPTS": 3}
    failing_tests = [sys.executable, "-c", f"import sys; print({PYTEST_OUTPUT!r}); sys.exit(1)"]
    session = team_spawn(
        name="Evidence crew",
        workspace=str(workspace),
        members=[
            scripted("developer"),
            MemberSpec(role="tester", runtime="command", runtime_config={"argv": failing_tests}),
            scripted("devops"),
        ],
    )
    workflow = work_submit(session=session, work=WorkSpec(title="Calculator", pattern="ci_cd"))

    drive()

    decision = Decision.objects.get(workflow=workflow)
    assert decision.kind == "retries_exhausted"
    assert "failed 3 times (assert 3 == 4)" in decision.question
    assert decision.context["evidence"] == "assert 3 == 4"
    assert Task.objects.filter(workflow=workflow, step="test", outcome="failure").count() == 3
    fix = Task.objects.filter(workflow=workflow, step="implement").order_by("id").last()
    assert "Evidence: assert 3 == 4" in fix.handoff_note
