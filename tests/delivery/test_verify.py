"""The coordinator's own verify commands: exit codes, bounded output, timeouts, missing programs."""

from __future__ import annotations

import sys

from coordination.delivery.verify import verify_passed, verify_run


def test_commands_run_in_order_and_stop_at_the_first_failure(tmp_path):
    (tmp_path / "marker").write_text("here")
    runs = verify_run(
        commands=[["cat", "marker"], ["sh", "-c", "echo failing >&2; exit 4"], ["true"]],
        cwd=tmp_path,
    )
    assert [run.exit_code for run in runs] == [0, 4]
    assert runs[0].passed and runs[0].output_tail == "here"
    assert "failing" in runs[1].output_tail and not verify_passed(runs)
    assert runs[1].command == ["sh", "-c", "echo failing >&2; exit 4"]
    assert all(run.duration_ms >= 0 for run in runs)


def test_output_is_a_bounded_tail(tmp_path):
    (run,) = verify_run(
        commands=[[sys.executable, "-c", "print('x' * 100000); print('the end')"]], cwd=tmp_path, tail_bytes=1000
    )
    assert run.passed
    assert run.output_tail.endswith("the end\n")
    assert len(run.output_tail) < 1100 and "earlier bytes omitted" in run.output_tail


def test_a_command_past_its_timeout_is_killed_and_fails(tmp_path):
    (run,) = verify_run(commands=[["sh", "-c", "sleep 30 & sleep 30"]], cwd=tmp_path, timeout_s=0.5)
    assert run.exit_code is None and not run.passed
    assert "timed out" in run.output_tail
    assert run.duration_ms < 5000


def test_a_missing_program_fails_with_a_message(tmp_path):
    (run,) = verify_run(commands=[["no-such-program-here"]], cwd=tmp_path)
    assert not run.passed and run.exit_code == 127
    assert "no-such-program-here" in run.output_tail


def test_the_worktree_is_named_in_the_environment(tmp_path):
    (run,) = verify_run(commands=[["sh", "-c", 'echo "$HIVE_WORKTREE"']], cwd=tmp_path)
    assert run.output_tail.strip() == str(tmp_path)
