"""Deliveries, attempt side: each attempt of a code session works in its own worktree, and the
coordinator checks its claim itself before the workflow branch may move.

These run in the daemon's worker threads, around the runtime (git is slow and must stay off the
loop); each database write is a short transaction of its own, with its events. The workflow branch
only moves under the task's row lock with the attempt number checked, and by compare-and-swap in git.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.runtimes import Outcome, RuntimeResult, TaskContext
from agents.runtimes.process import attempt_marker, kill_process_group

from ..delivery.git import GitError
from ..delivery.verify import CommandRun, verify_passed, verify_run
from ..delivery.workspace import (
    Clone,
    Worktree,
    advance_allowed,
    branch_push,
    changed_files,
    clone_open,
    commit_leftovers,
    merge_target_into,
    same_tree,
    target_ensure,
    workflow_branch_ensure,
    worktree_add,
    worktree_remove,
    worktrees_prune,
)
from ..events import EventDraft, events_record
from ..models import CoordinationEvent, Session, Task, TaskAttempt, VerificationRun, Workflow

logger = logging.getLogger(__name__)

E = CoordinationEvent.Type
HOST = socket.gethostname()
# Steps whose success means "the code changed": an empty diff there is a claim that does not hold.
CHANGE_STEPS = frozenset({"implement", "pair"})
# The workflow state flag asking the next developer attempt to start with the target merged in.
MERGE_TARGET_FLAG = "merge_target"
OUTPUT_TAIL = VerificationRun.OUTPUT_TAIL_MAX_CHARS


_code_sessions = {"checked": float("-inf"), "exist": False}
CODE_SESSIONS_RECHECK_S = 2.0


def code_sessions_exist() -> bool:
    """Whether any session has a repository (checked at most every few seconds: the common crew has none)."""
    now = time.monotonic()
    if now - _code_sessions["checked"] >= CODE_SESSIONS_RECHECK_S:
        _code_sessions["exist"] = Session.objects.exclude(repository="").exists()
        _code_sessions["checked"] = now
    return bool(_code_sessions["exist"])


def keep_worktrees() -> bool:
    """HIVE_KEEP_WORKTREES=1 leaves attempts' worktrees in place, for debugging."""
    return os.environ.get("HIVE_KEEP_WORKTREES", "").lower() in {"1", "true", "yes", "on"}


def workspace_root() -> Path:
    return Path(settings.HIVE["WORKSPACE_ROOT"])


def clone_for(repository: str) -> Clone:
    return clone_open(root=workspace_root(), repository=repository)


@dataclass(frozen=True)
class AttemptPlan:
    """What an attempt of a code session needs to know, read once before it runs."""

    task_id: int
    attempt: int
    session_id: int
    workflow_id: int
    agent_id: int | None
    agent_name: str
    repository: str
    target_branch: str
    verify: list[list[str]]
    workflow_branch: str
    attempt_branch: str
    step: str
    files: list[str]
    expects_change: bool
    merge_target: bool
    simulated: bool

    @property
    def worktree_name(self) -> str:
        return f"t{self.task_id}-a{self.attempt}"

    @property
    def marker(self) -> str:
        return attempt_marker(task_id=self.task_id, attempt=self.attempt)


def attempt_plans(*, claims: list[tuple[int, int]]) -> dict[int, AttemptPlan]:
    """Plans of the claimed (task, attempt) pairs whose session has a repository, in one query; others are absent."""
    attempts = dict(claims)
    if not attempts:
        return {}
    tasks = Task.objects.filter(pk__in=list(attempts), session__repository__gt="").select_related(
        "workflow__session", "agent"
    )
    return {task.pk: _plan(task, attempt=attempts[task.pk]) for task in tasks}


def attempt_plan(*, task_id: int, attempt: int) -> AttemptPlan | None:
    """The plan of a code session's attempt; None for a session without a repository."""
    return attempt_plans(claims=[(task_id, attempt)]).get(task_id)


def _plan(task: Task, *, attempt: int) -> AttemptPlan:
    workflow, session = task.workflow, task.workflow.session
    prefix = session.branch_prefix
    return AttemptPlan(
        task_id=task.pk,
        attempt=attempt,
        session_id=session.pk,
        workflow_id=workflow.pk,
        agent_id=task.agent_id,
        agent_name=task.agent.name if task.agent else "hive",
        repository=session.repository,
        target_branch=session.effective_target_branch,
        verify=[list(command) for command in session.verify or []],
        workflow_branch=workflow.branch or f"{prefix}w{workflow.pk}",
        attempt_branch=f"{prefix}t{task.pk}-a{attempt}",
        step=task.step,
        files=list(task.files or []),
        expects_change=workflow.expects_change,
        merge_target=bool(workflow.state.get(MERGE_TARGET_FLAG)) and task.step in CHANGE_STEPS,
        simulated=task.simulated,
    )


def attempt_prepare(plan: AttemptPlan) -> tuple[Clone, Worktree, str]:
    """The attempt's own worktree, on its own branch, from the workflow branch's head; and the workflow's base."""
    clone = clone_for(plan.repository)
    target_ensure(clone, branch=plan.target_branch)
    head = workflow_branch_ensure(clone, branch=plan.workflow_branch, target=plan.target_branch)
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=plan.workflow_id)
        if not workflow.branch:
            workflow.branch, workflow.base_sha, workflow.head_sha = plan.workflow_branch, head, head
            workflow.save(update_fields=["branch", "base_sha", "head_sha"])
    worktree = worktree_add(clone, name=plan.worktree_name, branch=plan.attempt_branch, start=head)
    if plan.merge_target:
        merge_target_into(worktree, clone=clone, target=plan.target_branch)
    TaskAttempt.objects.filter(task_id=plan.task_id, number=plan.attempt).update(
        branch=plan.attempt_branch, worktree=str(worktree.path), base_sha=head, host=HOST
    )
    return clone, worktree, workflow.base_sha


def attempt_context(plan: AttemptPlan, ctx: TaskContext, worktree: Worktree, *, workflow_base: str) -> TaskContext:
    """The runtime's context: its workspace is the worktree; its process group is recorded for fencing.

    `base_sha` (HIVE_BASE_SHA) is the workflow's base, so `git diff $HIVE_BASE_SHA` in the worktree is the
    whole change under review, not just this attempt's part of it.
    """

    def record_group(pgid: int) -> None:
        TaskAttempt.objects.filter(task_id=plan.task_id, number=plan.attempt).update(pgid=pgid, host=HOST)

    return replace(
        ctx,
        workspace=str(worktree.path),
        branch=worktree.branch,
        base_sha=workflow_base or worktree.base_sha,
        on_process_start=record_group,
    )


def attempt_run(*, plan: AttemptPlan, ctx: TaskContext, run) -> RuntimeResult:
    """Run a code session's attempt through `run(ctx)` in its own worktree, and judge its claim.

    Runs in a worker thread. Never raises: a git failure is the attempt's failure, with git's message as evidence.
    """
    task_id, attempt = plan.task_id, plan.attempt
    try:
        clone, worktree, workflow_base = attempt_prepare(plan)
    except GitError as exc:
        logger.warning("Could not prepare the worktree of task %s attempt %s: %s", task_id, attempt, exc)
        return RuntimeResult(outcome=Outcome.FAILURE, error=f"could not prepare the worktree: {exc}"[:2000])
    try:
        result = run(attempt_context(plan, ctx, worktree, workflow_base=workflow_base))
        # the runtime waited for its process group: nothing is left to fence
        TaskAttempt.objects.filter(task_id=task_id, number=attempt).update(pgid=None)
        if result.outcome != Outcome.SUCCESS:
            return result
        return attempt_conclude(plan, clone=clone, worktree=worktree, result=result)
    except GitError as exc:
        return RuntimeResult(outcome=Outcome.FAILURE, error=f"git: {exc}"[:2000])
    finally:
        if not keep_worktrees():
            try:
                worktree_remove(clone, worktree)
            except GitError:
                logger.warning("Could not remove worktree %s", worktree.path, exc_info=True)
        connection.close()  # this thread's own connection: not left open between attempts


def attempt_conclude(plan: AttemptPlan, *, clone: Clone, worktree: Worktree, result: RuntimeResult) -> RuntimeResult:
    """Commit what the agent left, check its claim, and advance the workflow branch if the claim holds."""
    message = f"{plan.step}: task {plan.task_id} attempt {plan.attempt}\n\n{result.summary}".strip()
    head = commit_leftovers(worktree, author=(plan.agent_name, f"{plan.agent_name}@hive.local"), message=message)
    base = worktree.base_sha
    files = changed_files(cwd=worktree.path, base=base, head=head)
    TaskAttempt.objects.filter(task_id=plan.task_id, number=plan.attempt).update(head_sha=head, changed_files=files)
    failure = _claim_problem(plan, worktree=worktree, base=base, head=head)
    runs: list[CommandRun] = []
    if not failure and plan.verify:
        runs = verify_run(commands=plan.verify, cwd=worktree.path)
        if not verify_passed(runs):
            failed = runs[-1]
            failure = CommandRun(
                command=failed.command,
                exit_code=failed.exit_code,
                output_tail=failed.output_tail,
                duration_ms=failed.duration_ms,
                passed=False,
            )
    _claim_record(plan, runs=runs, failure=failure, files=files, head=head)
    if failure:
        return _rejected(result, failure=failure)
    advanced, why = workflow_advance(plan, clone=clone, head=head, base=base)
    if not advanced:
        return replace(result, outcome=Outcome.FAILURE, error=why, summary=why)
    return result


def _claim_problem(plan: AttemptPlan, *, worktree: Worktree, base: str, head: str) -> CommandRun | None:
    """The coordinator's own check that fails the claim, as evidence shaped like a command run; None if it holds."""
    if not advance_allowed(cwd=worktree.path, old=base, new=head):
        detail = f"the attempt's head {head[:12]} does not contain the workflow head {base[:12]} it started from"
        return CommandRun(
            command=["git", "merge-base", "--is-ancestor", base, head],
            exit_code=1,
            output_tail=detail,
            duration_ms=0,
            passed=False,
        )
    # a conflict resolution that keeps the workflow's side still changes history: the target is merged in
    resolved_merge = plan.merge_target and head != base
    expects = plan.step in CHANGE_STEPS and plan.expects_change and not resolved_merge
    if expects and same_tree(cwd=worktree.path, base=base, head=head):
        detail = f"no change: the tree at {head[:12]} is the tree at {base[:12]}; the step expects a change"
        return CommandRun(
            command=["git", "diff", "--quiet", base, head], exit_code=0, output_tail=detail, duration_ms=0, passed=False
        )
    return None


def _claim_record(
    plan: AttemptPlan, *, runs: list[CommandRun], failure: CommandRun | None, files: list[str], head: str
):
    now = timezone.now()
    base = {
        "session_id": plan.session_id,
        "workflow_id": plan.workflow_id,
        "task_id": plan.task_id,
        "agent_id": plan.agent_id,
        "simulated": plan.simulated,
    }
    drafts = []
    outside = sorted(set(files) - set(plan.files)) if plan.files else []
    if outside:
        drafts.append(
            EventDraft(
                type=E.FILES_OUTSIDE_DECLARED,
                message=f"Changed files outside the declared ones: {', '.join(outside[:5])}",
                collaboration_data={"declared": plan.files, "outside": outside[:50], "attempt": plan.attempt},
                **base,
            )
        )
    with transaction.atomic():
        rows = [_verification_row(plan, run=run, now=now) for run in runs]
        if failure is not None and failure not in runs:
            rows.append(_verification_row(plan, run=failure, now=now))
        VerificationRun.objects.bulk_create(rows)
        TaskAttempt.objects.filter(task_id=plan.task_id, number=plan.attempt).update(verified=failure is None)
        if failure is None:
            drafts.append(
                EventDraft(
                    type=E.VERIFICATION_PASSED,
                    message=f"Claim verified: {len(files)} file(s) changed, {len(runs)} verify command(s) passed",
                    collaboration_data={
                        "attempt": plan.attempt,
                        "head": head,
                        "changed_files": files[:50],
                        "runs": [run.command for run in runs],
                    },
                    **base,
                )
            )
        else:
            drafts.append(
                EventDraft(
                    type=E.VERIFICATION_FAILED,
                    message=f"Claim rejected: {' '.join(failure.command)[:120]} (exit {failure.exit_code})",
                    collaboration_data={
                        "attempt": plan.attempt,
                        "kind": "claim",
                        "command": failure.command,
                        "exit_code": failure.exit_code,
                        "output_tail": failure.output_tail[-4000:],
                    },
                    **base,
                )
            )
        events_record(drafts, now=now)


def _verification_row(plan: AttemptPlan, *, run: CommandRun, now) -> VerificationRun:
    return VerificationRun(
        workflow_id=plan.workflow_id,
        attempt=TaskAttempt.objects.get(task_id=plan.task_id, number=plan.attempt),
        kind=VerificationRun.Kind.CLAIM,
        command=run.command,
        exit_code=run.exit_code,
        output_tail=run.output_tail[-OUTPUT_TAIL:],
        duration_ms=run.duration_ms,
        passed=run.passed,
        created_at=now,
    )


def _rejected(result: RuntimeResult, *, failure: CommandRun) -> RuntimeResult:
    """The runtime's result turned into a failure carrying the coordinator's evidence (tokens and cost kept)."""
    evidence = f"verification failed: `{' '.join(failure.command)}` exit {failure.exit_code}\n{failure.output_tail}"
    return replace(
        result,
        outcome=Outcome.FAILURE,
        summary=f"Claim rejected by the coordinator: {' '.join(failure.command)[:100]} (exit {failure.exit_code})",
        error=evidence[-4000:],
        output=(result.output + "\n\n" + evidence)[-16000:],
    )


def workflow_advance(plan: AttemptPlan, *, clone: Clone, head: str, base: str) -> tuple[bool, str]:
    """Fast-forward the workflow branch to the attempt's head, only while this attempt is the task's current one."""
    with transaction.atomic():
        task = Task.objects.select_for_update().only("id", "attempt", "status").get(pk=plan.task_id)
        if task.attempt != plan.attempt or task.status != Task.Status.RUNNING:
            return False, f"attempt {plan.attempt} is no longer the task's current attempt; its work is not merged"
        workflow = Workflow.objects.select_for_update().only("id", "head_sha").get(pk=plan.workflow_id)
        if workflow.head_sha != base:
            return False, f"the workflow branch moved from {base[:12]} to {workflow.head_sha[:12]} during the attempt"
        if head != base:
            pushed = branch_push(clone, branch=plan.workflow_branch, new=head, expected_old=base)
            # a push that landed before a crash of this very attempt is ours too
            if not pushed and clone.remote_head(plan.workflow_branch) != head:
                return False, "the workflow branch moved in the repository; a late attempt never advances it"
            workflow.head_sha = head
            workflow.save(update_fields=["head_sha"])
    return True, ""


_fence_checked = {"at": float("-inf")}
FENCE_EVERY_S = 10.0


def attempts_fence_reclaimed(*, limit: int = 100) -> int:
    """Kill the process groups of this host's attempts that no longer run (reclaimed or handed back).

    A finished attempt clears its group id itself, so only attempts cut short keep one; checked every few seconds.
    """
    now = time.monotonic()
    if now - _fence_checked["at"] < FENCE_EVERY_S:
        return 0
    _fence_checked["at"] = now
    stale = list(
        TaskAttempt.objects.filter(host=HOST, pgid__isnull=False)
        .exclude(status=TaskAttempt.Status.RUNNING)
        .values_list("id", "task_id", "number", "pgid")[:limit]
    )
    killed = 0
    for attempt_id, task_id, number, pgid in stale:
        if kill_process_group(pgid=pgid, marker=attempt_marker(task_id=task_id, attempt=number)):
            killed += 1
            logger.warning("Killed process group %s of task %s attempt %s", pgid, task_id, number)
        TaskAttempt.objects.filter(pk=attempt_id).update(pgid=None)
    return killed


def worktrees_prune_at_start() -> int:
    """Remove worktrees left by a previous run of this daemon (none of its attempts runs yet)."""
    repositories = set(
        Workflow.objects.filter(session__repository__gt="", status__in=Workflow.OPEN_STATUSES)
        .values_list("session__repository", flat=True)
        .distinct()
    )
    removed = 0
    for repository in sorted(repositories):
        try:
            clone = clone_for(repository)
            running = set(
                TaskAttempt.objects.filter(
                    status=TaskAttempt.Status.RUNNING, host=HOST, worktree__startswith=str(clone.worktrees)
                ).values_list("worktree", flat=True)
            )
            names = worktrees_prune(clone, keep={Path(path).name for path in running})
        except GitError:
            logger.warning("Could not prune the worktrees of %s", repository, exc_info=True)
            continue
        if names:
            events_record(
                [
                    EventDraft(
                        type=E.WORKTREE_PRUNED,
                        message=f"Pruned {len(names)} stale worktree(s) of {repository}",
                        collaboration_data={"repository": repository, "worktrees": names[:50], "host": HOST},
                    )
                ],
                now=timezone.now(),
            )
        removed += len(names)
    return removed
