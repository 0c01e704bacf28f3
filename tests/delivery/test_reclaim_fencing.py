"""On reclaim, this host kills the recorded process group of the old attempt, and only that attempt's."""

from __future__ import annotations

import os

from agents.runtimes.process import ATTEMPT_MARKER_ENV, attempt_marker, popen_fenced
from coordination.models import Task, TaskAttempt
from coordination.services import WorkSpec, deliveries, work_submit


def test_a_reclaimed_attempts_process_group_is_killed_on_this_host(crew, monkeypatch):
    monkeypatch.setitem(deliveries._fence_checked, "at", float("-inf"))
    work_submit(session=crew, work=WorkSpec(title="t", pattern="code_review_cycle"))
    task = Task.objects.get()
    env = {"PATH": os.environ["PATH"], ATTEMPT_MARKER_ENV: attempt_marker(task_id=task.pk, attempt=1)}
    old = popen_fenced(["sleep", "30"], env=env)
    other = popen_fenced(["sleep", "30"], env={"PATH": os.environ["PATH"]})
    try:
        TaskAttempt.objects.create(
            task=task, number=1, status=TaskAttempt.Status.RECLAIMED, host=deliveries.HOST, pgid=old.pid
        )
        # an attempt whose recorded group now belongs to some other program: left alone
        TaskAttempt.objects.create(
            task=task, number=2, status=TaskAttempt.Status.HANDED_BACK, host=deliveries.HOST, pgid=other.pid
        )
        assert deliveries.attempts_fence_reclaimed() == 1
        assert old.wait(timeout=5) != 0
        assert other.poll() is None
        assert not TaskAttempt.objects.filter(pgid__isnull=False).exists()
    finally:
        for proc in (old, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
