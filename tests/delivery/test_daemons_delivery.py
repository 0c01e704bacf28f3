"""Deliveries with real run_coordinator processes on PostgreSQL and a shared bare repository."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.db import connection

from coordination.models import CoordinationEvent, Session, Task, TaskAttempt, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from tests.reliability.test_daemons import Daemons, wait_for

from .conftest import run_git

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several daemons need PostgreSQL"),
]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "agent",
    "GIT_AUTHOR_EMAIL": "agent@example.com",
    "GIT_COMMITTER_NAME": "agent",
    "GIT_COMMITTER_EMAIL": "agent@example.com",
}


class CodeDaemons(Daemons):
    """Daemons each with their own workspace root (their own clone of the repository)."""

    def start_with_root(self, name: str, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        os.environ["HIVE_WORKSPACE_ROOT"] = str(root)
        try:
            self.start(name)
        finally:
            del os.environ["HIVE_WORKSPACE_ROOT"]


@pytest.fixture
def daemons(transactional_db, tmp_path):
    made = CodeDaemons(tmp_path)
    yield made
    made.stop_all()


def code_session(workspace: Path, repository: Path, developer_argv: list[str]) -> Session:
    members = [
        MemberSpec(
            role="developer",
            name="dev",
            concurrency=4,
            runtime="command",
            runtime_config={"argv": developer_argv, "env": GIT_IDENTITY, "timeout": 60},
        ),
        MemberSpec(role="reviewer", name="rev", concurrency=4, runtime="scripted", runtime_config={"duration_s": 0}),
    ]
    session = team_spawn(name="Daemon code crew", workspace=str(workspace), members=members)
    Session.objects.filter(pk=session.pk).update(repository=str(repository))
    session.refresh_from_db()
    return session


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(
        (entry / "stat").exists() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _pgid_of(entry) == pgid
    )


def _pgid_of(entry: Path) -> int | None:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def test_kill_9_of_a_daemon_mid_attempt_leaves_exactly_one_commit_of_the_task(daemons, workspace, bare_repo, tmp_path):
    sleep_then_commit = [
        "sh",
        "-c",
        'sleep 5; echo "attempt $HIVE_ATTEMPT" > slow.txt; git add slow.txt; git commit -qm "slow task commit"',
    ]
    session = code_session(workspace, bare_repo, sleep_then_commit)
    workflow = work_submit(session=session, work=WorkSpec(title="slow", pattern="code_review_cycle"))
    daemons.start_with_root("one", tmp_path / "root-one")
    first = wait_for(
        lambda: TaskAttempt.objects.filter(task__workflow=workflow, number=1, pgid__isnull=False).first(),
        timeout=60,
        what="the first attempt's process group",
        daemons=daemons,
    )
    _, proc = daemons.procs[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    while group_alive(first.pgid) and time.monotonic() - killed_at < 2:
        time.sleep(0.05)
    assert not group_alive(first.pgid), "the runtime's process group outlived its daemon by 2 s"
    daemons.start_with_root("two", tmp_path / "root-two")
    wait_for(
        lambda: Workflow.objects.filter(pk=workflow.pk, delivered_at__isnull=False).exists(),
        timeout=120,
        what="the workflow delivered by the second daemon",
        daemons=daemons,
    )
    workflow.refresh_from_db()
    target = session.effective_target_branch
    commits = run_git("log", "--format=%s", "--grep=slow task commit", target, cwd=bare_repo).splitlines()
    assert commits == ["slow task commit"]
    assert run_git("show", f"{target}:slow.txt", cwd=bare_repo) == "attempt 2"
    assert CoordinationEvent.objects.filter(workflow=workflow, type="delivered").count() == 1


def test_two_daemons_sharing_a_bare_repository_merge_each_workflow_once(daemons, workspace, bare_repo, tmp_path):
    write_own_file = ["sh", "-c", 'echo "$HIVE_TASK_ID" > "file-$HIVE_TASK_ID.txt"']
    session = code_session(workspace, bare_repo, write_own_file)
    workflows = [
        work_submit(session=session, work=WorkSpec(title=f"w{n}", pattern="code_review_cycle")) for n in range(20)
    ]
    daemons.start_with_root("one", tmp_path / "root-one")
    daemons.start_with_root("two", tmp_path / "root-two")
    wait_for(
        lambda: Workflow.objects.filter(session=session, delivered_at__isnull=False).count() == len(workflows),
        timeout=300,
        what="20 workflows delivered",
        daemons=daemons,
    )
    target = session.effective_target_branch
    merges = run_git("log", "--merges", "--format=%s", target, cwd=bare_repo).splitlines()
    for workflow in workflows:
        workflow.refresh_from_db()
        assert sum(1 for subject in merges if subject.startswith(f"Merge {workflow.branch}:")) == 1
        assert CoordinationEvent.objects.filter(workflow=workflow, type="delivered").count() == 1
    assert Task.objects.filter(session=session, step="implement").count() == len(workflows)
