"""A runtime's processes are fenced: own group, dying with the daemon, killed only while still that attempt's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agents.runtimes import CommandRuntime, TaskContext
from agents.runtimes.process import ATTEMPT_MARKER_ENV, attempt_marker, kill_process_group, popen_fenced

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")


PRINT_GROUP_MARKER_WORKTREE = (
    "import os; e = os.environ; print(os.getpgrp(), e['HIVE_ATTEMPT_MARKER'], e['HIVE_WORKTREE'])"
)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (the sleeping grandchild included)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if fields[2] == str(pgid) and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def wait_until(predicate, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def wait_for_file(path: Path, *, within: float = 10.0) -> str:
    assert wait_until(lambda: path.exists() and path.read_text().strip(), within=within), f"{path} never written"
    return path.read_text().strip()


def test_child_dies_when_its_daemon_is_killed(tmp_path):
    """kill -9 of the parent: the fenced child and its grandchild (sleeping, then meaning to write) go within 2 s."""
    pid_file = tmp_path / "child.pid"
    late_write = tmp_path / "late-commit"
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path.cwd())!r})
        from agents.runtimes.process import popen_fenced
        child = popen_fenced(["sh", "-c", "sleep 5; touch {late_write}"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        child.wait()
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        child_pid = int(wait_for_file(pid_file))
        assert alive(child_pid)
        assert os.getpgid(child_pid) == child_pid, "the child leads its own process group"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: not group_members(child_pid), within=2.0), "the group outlived its daemon"
        time.sleep(0.2)
        assert not late_write.exists()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_unfenced_child_would_survive(tmp_path):
    """The control: a child in a new session without the death signal outlives a killed parent."""
    pid_file = tmp_path / "child.pid"
    parent_code = textwrap.dedent(
        f"""
        import subprocess
        child = subprocess.Popen(["sleep", "30"], start_new_session=True)
        open({str(pid_file)!r}, "w").write(str(child.pid))
        child.wait()
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    child_pid = int(wait_for_file(pid_file))
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    try:
        time.sleep(0.5)
        assert alive(child_pid)
    finally:
        os.kill(child_pid, signal.SIGKILL)


def test_kill_process_group_checks_the_attempt_marker(tmp_path):
    env = {"PATH": os.environ["PATH"], ATTEMPT_MARKER_ENV: attempt_marker(task_id=7, attempt=2)}
    proc = popen_fenced(["sh", "-c", "sleep 30 & wait"], env=env)
    try:
        time.sleep(0.2)
        # another attempt's marker: the group is someone else's now, left alone
        assert not kill_process_group(pgid=proc.pid, marker=attempt_marker(task_id=7, attempt=1))
        assert proc.poll() is None
        assert kill_process_group(pgid=proc.pid, marker=attempt_marker(task_id=7, attempt=2))
        proc.wait(timeout=5)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_process_group_of_a_finished_attempt_is_a_no_op():
    proc = popen_fenced(["true"])
    proc.wait()
    assert not kill_process_group(pgid=proc.pid, marker="1-1")
    assert not kill_process_group(pgid=os.getpgrp(), marker="1-1"), "never our own group"


def test_command_runtime_reports_its_process_group_and_marks_the_child(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    started: list[int] = []
    runtime = CommandRuntime(
        CommandRuntime.validate_config(
            {
                "argv": [sys.executable, "-c", PRINT_GROUP_MARKER_WORKTREE],
                "env_allow": ["PATH"],
            }
        )
    )
    ctx = TaskContext(
        task_id=41,
        attempt=3,
        title="t",
        description="",
        role="developer",
        step="implement",
        pattern="feature",
        workspace=str(workspace),
        branch="hive/s/t41-a3",
        base_sha="0" * 40,
        on_process_start=started.append,
    )
    result = runtime.run(ctx)
    assert result.exit_code == 0, result.output
    pgid, marker, worktree = result.output.split()
    assert started == [int(pgid)]
    assert marker == "41-3"
    assert worktree == str(workspace)
