"""Deliveries, merge side: finished workflows queue per session, one merger per repository at a time.

A workflow of a code session whose last step succeeded is queued (`merge_queued`). The merger
holds a database lease on the repository (MergeLock), merges the oldest queued workflow onto the
target, verifies the merged tree and only then moves the target: `merged` and `delivered`, the one
moment value is counted. A git conflict (`merge_conflict`, with files and hunks) sends the workflow
to conflict resolution: the architect, then a developer attempt that starts with the target merged
in, then a human Decision. A failing verify of the merged tree sends it back to the developer.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from .. import patterns
from ..delivery.git import GitError
from ..delivery.merger import MergeResult, MergeStatus, merge_workflow
from ..events import EventDraft, events_record
from ..models import CoordinationEvent, MergeLock, Task, VerificationRun, Workflow
from .deliveries import (
    MERGE_TARGET_FLAG,
    attempts_fence_reclaimed,
    clone_for,
    code_sessions_exist,
    keep_worktrees,
    worktrees_prune_at_start,
)
from .flow import FlowBatch, batch_flush, decision_draft, task_for_step

logger = logging.getLogger(__name__)

E = CoordinationEvent.Type
LEASE = timedelta(minutes=10)
CONFLICT_BOUND = 2  # merge conflicts a workflow may go through before a human decides
CONFLICT_COUNTER = "merge_conflicts"


def merge_queue_enqueue(*, now=None) -> int:
    """Queue the code sessions' workflows that completed and are neither queued nor delivered."""
    now = now or timezone.now()
    ready = list(
        Workflow.objects.filter(
            status=Workflow.Status.COMPLETED,
            merge_queued_at__isnull=True,
            delivered_at__isnull=True,
            session__repository__gt="",
        )
        .exclude(branch="")
        .values_list("id", "session_id", "title", "branch")[:200]
    )
    queued = 0
    for workflow_id, session_id, title, branch in ready:
        with transaction.atomic():
            if not Workflow.objects.filter(pk=workflow_id, merge_queued_at__isnull=True).update(merge_queued_at=now):
                continue
            events_record(
                [
                    EventDraft(
                        type=E.MERGE_QUEUED,
                        message=f"{title} queued for merge",
                        session_id=session_id,
                        workflow_id=workflow_id,
                        collaboration_data={"branch": branch},
                    )
                ],
                now=now,
            )
        queued += 1
    return queued


def merge_lock_acquire(*, repository: str, owner: str, now=None) -> bool:
    """Take the repository's merge lease (or renew our own); False while another merger holds it."""
    now = now or timezone.now()
    expires = now + LEASE
    taken = MergeLock.objects.filter(Q(owner=owner) | Q(expires_at__lt=now), repository=repository).update(
        owner=owner, acquired_at=now, expires_at=expires
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            MergeLock.objects.create(repository=repository, owner=owner, acquired_at=now, expires_at=expires)
    except IntegrityError:
        return False
    return True


def merge_lock_release(*, repository: str, owner: str) -> None:
    MergeLock.objects.filter(repository=repository, owner=owner).delete()


def merge_queue_run(*, owner: str, limit: int = 20) -> int:
    """Merge queued workflows, oldest first, repository by repository; how many were settled."""
    merge_queue_enqueue()
    repositories = list(
        Workflow.objects.filter(merge_queued_at__isnull=False, delivered_at__isnull=True)
        .values_list("session__repository", flat=True)
        .distinct()
    )
    settled = 0
    for repository in sorted(set(repositories)):
        if not merge_lock_acquire(repository=repository, owner=owner):
            continue
        try:
            queue = list(
                Workflow.objects.filter(
                    merge_queued_at__isnull=False, delivered_at__isnull=True, session__repository=repository
                )
                .select_related("session")
                .order_by("merge_queued_at", "id")[:limit]
            )
            for workflow in queue:
                merge_lock_acquire(repository=repository, owner=owner)  # renew while working through the queue
                if workflow_merge(workflow=workflow):
                    settled += 1
        finally:
            merge_lock_release(repository=repository, owner=owner)
    return settled


def workflow_merge(*, workflow: Workflow) -> bool:
    """One merge attempt of a queued workflow; False when it must be tried again later (target moved, git error)."""
    session = workflow.session
    try:
        clone = clone_for(session.repository)
        result = merge_workflow(
            clone,
            workflow_branch=workflow.branch,
            target_branch=session.effective_target_branch,
            verify_commands=[list(command) for command in session.verify or []],
            message=f"Merge {workflow.branch}: {workflow.title}",
            worktree_name=f"merge-w{workflow.pk}",
            keep_worktree=keep_worktrees(),
        )
    except GitError as exc:
        logger.warning("Merge of workflow %s failed: %s", workflow.pk, exc)
        return False
    if result.status == MergeStatus.TARGET_MOVED:
        return False
    now = timezone.now()
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if locked.delivered_at or not locked.merge_queued_at:
            return True  # settled meanwhile (another merger, or cancelled)
        _runs_record(workflow=locked, result=result, now=now)
        if result.status in (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED):
            _delivered(workflow=locked, result=result, now=now)
        elif result.status == MergeStatus.CONFLICT:
            _conflicted(workflow=locked, result=result, now=now)
        else:
            _merge_verify_failed(workflow=locked, result=result, now=now)
    return True


def _runs_record(*, workflow: Workflow, result: MergeResult, now) -> None:
    VerificationRun.objects.bulk_create(
        [
            VerificationRun(
                workflow=workflow,
                kind=VerificationRun.Kind.MERGE,
                command=run.command,
                exit_code=run.exit_code,
                output_tail=run.output_tail[-VerificationRun.OUTPUT_TAIL_MAX_CHARS :],
                duration_ms=run.duration_ms,
                passed=run.passed,
                created_at=now,
            )
            for run in result.verify
        ]
    )


def _base(workflow: Workflow) -> dict:
    return {"session_id": workflow.session_id, "workflow_id": workflow.pk}


def _delivered(*, workflow: Workflow, result: MergeResult, now) -> None:
    commit = result.merge_commit or result.target_before
    workflow.delivered_at, workflow.merge_commit = now, commit
    workflow.state = {key: value for key, value in workflow.state.items() if key != MERGE_TARGET_FLAG}
    workflow.save(update_fields=["delivered_at", "merge_commit", "state"])
    target = workflow.session.effective_target_branch
    events_record(
        [
            EventDraft(
                type=E.MERGED,
                message=f"{workflow.title} merged onto {target} as {commit[:12]}",
                collaboration_data={
                    "branch": workflow.branch,
                    "target": target,
                    "commit": commit,
                    "verify": [run.command for run in result.verify],
                },
                **_base(workflow),
            ),
            EventDraft(
                type=E.DELIVERED,
                message=f"{workflow.title} delivered",
                collaboration_data={"commit": commit},
                business_impact={"hours_saved": str(workflow.human_estimate_hours)},
                **_base(workflow),
            ),
        ],
        now=now,
    )


def _conflicted(*, workflow: Workflow, result: MergeResult, now) -> None:
    files = [conflict.path for conflict in result.conflicts]
    events_record(
        [
            EventDraft(
                type=E.MERGE_CONFLICT,
                message=f"{workflow.title} conflicts with {workflow.session.effective_target_branch}: "
                f"{', '.join(files[:5])}",
                collaboration_data={
                    "files": files[:50],
                    "hunks": {conflict.path: conflict.hunks[:5] for conflict in result.conflicts[:20]},
                    "target": result.target_before,
                    "head": result.workflow_head,
                },
                **_base(workflow),
            )
        ],
        now=now,
    )
    hunks = "\n\n".join(f"{conflict.path}:\n" + "\n".join(conflict.hunks[:3]) for conflict in result.conflicts[:10])
    note = f"Merge conflict with the target branch in: {', '.join(files)}\n\n{hunks}"
    _reopen(workflow=workflow, now=now, note=note, first_step="resolve_conflict", counter=CONFLICT_COUNTER)


def _merge_verify_failed(*, workflow: Workflow, result: MergeResult, now) -> None:
    failed = result.verify[-1]
    events_record(
        [
            EventDraft(
                type=E.VERIFICATION_FAILED,
                message=f"Merged tree of {workflow.title} failed `{' '.join(failed.command)[:100]}`",
                collaboration_data={
                    "kind": "merge",
                    "command": failed.command,
                    "exit_code": failed.exit_code,
                    "output_tail": failed.output_tail[-4000:],
                },
                **_base(workflow),
            )
        ],
        now=now,
    )
    note = (
        f"The merged tree failed `{' '.join(failed.command)}` (exit {failed.exit_code}):\n{failed.output_tail[-3000:]}"
    )
    _reopen(workflow=workflow, now=now, note=note, first_step="implement", counter="merge_verify_failures")


def _reopen(*, workflow: Workflow, now, note: str, first_step: str, counter: str) -> None:
    """Take the workflow out of the queue and back to work: a step's new task, or a human once the bound is passed."""
    pattern = patterns.get_pattern(workflow.pattern)
    keys = [step.key for step in pattern.steps]
    key = first_step if first_step in keys else ("implement" if "implement" in keys else keys[0])
    count = int(workflow.state.get(counter, 0)) + 1
    workflow.state = {**workflow.state, counter: count, MERGE_TARGET_FLAG: True}
    workflow.status, workflow.completed_at, workflow.merge_queued_at = Workflow.Status.RUNNING, None, None
    batch = FlowBatch()
    task = task_for_step(workflow=workflow, step=pattern.step(key), note=note, now=now, batch=batch)
    if count > CONFLICT_BOUND:
        task.status, task.ready_at = Task.Status.BLOCKED, None
        decision_draft(task=task, workflow=workflow, kind="conflict", now=now, batch=batch, facts={"error": note[:300]})
    batch_flush(batch, now=now)
    Workflow.objects.filter(pk=workflow.pk).update(merge_queued_at=None)


class MergeRunner:
    """Runs the merge queue off the daemon's loop: one background merge pass at a time per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pruned = False

    def on_housekeeping(self, sender, *, instance, **kwargs) -> None:
        """Receiver of coordination.signals.housekeeping: fence dead attempts' processes, start a merge pass."""
        attempts_fence_reclaimed()
        if not code_sessions_exist():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            first = not self._pruned
            self._pruned = True
            owner = f"{instance.name} (#{instance.pk})"
            self._thread = threading.Thread(
                target=self._pass, kwargs={"owner": owner, "prune": first}, name="hive-merger", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float = 30.0) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @staticmethod
    def _pass(*, owner: str, prune: bool) -> None:
        try:
            if prune:
                worktrees_prune_at_start()
            merge_queue_run(owner=owner)
        except Exception:  # the merger must never take the daemon down; the queue is retried next pass
            logger.exception("Merge pass failed")
        finally:
            connection.close()  # this thread's own connection: not left open between attempts


merge_runner = MergeRunner()
