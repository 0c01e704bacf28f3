"""Reads of deliveries: a workflow's diff, its verification runs, a session's merge queue.

The diff is read from git with a bounded output: from the session's repository when it
is a local path (reading objects only: its working tree, index and HEAD are never
used), else from a daemon's clone of it on this machine (`<workspace root>/.hive-clones/
<sha256(repository)[:16]>/repo.git`, the layout the delivery clones use).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from .exceptions import ConflictError
from .models import Session, VerificationRun, Workflow

DIFF_LIMIT_BYTES = 2 * 1024 * 1024
DIFF_TIMEOUT_S = 20
SHA = re.compile(r"^[0-9a-f]{40}$")
CLONES_DIR = ".hive-clones"


@dataclass(frozen=True)
class WorkflowDiff:
    base: str
    head: str
    of: str  # "merge": what the merge commit changed on the target; "branch": the workflow branch so far
    diff: str
    truncated: bool
    files: list[str]


def merge_queue(*, session: Session) -> QuerySet[Workflow]:
    """Workflows waiting to be merged onto the session's target, in the order the merger takes them."""
    return (
        Workflow.objects.filter(session=session, merge_queued_at__isnull=False, delivered_at__isnull=True)
        .order_by("merge_queued_at", "id")
        .only("id", "session_id", "title", "status", "branch", "base_sha", "head_sha", "merge_queued_at")
    )


def verification_runs(*, workflow: Workflow) -> QuerySet[VerificationRun]:
    return VerificationRun.objects.filter(workflow=workflow).select_related("attempt").order_by("id")


def repository_readable_copy(repository: str) -> Path | None:
    """A git directory on this machine holding the repository's objects, or None."""
    if not repository:
        return None
    path = repository.removeprefix("file://")
    if os.path.isabs(path) and os.path.isdir(path):
        return Path(path)
    digest = hashlib.sha256(repository.encode()).hexdigest()[:16]
    for root in [settings.HIVE["WORKSPACE_ROOT"], *settings.HIVE["WORKSPACE_ROOTS"]]:
        clone = Path(root) / CLONES_DIR / digest / "repo.git"
        if clone.is_dir():
            return clone
    return None


def workflow_diff(*, workflow: Workflow, limit: int = DIFF_LIMIT_BYTES) -> WorkflowDiff:
    """The unified diff of what the workflow delivered (its merge) or has so far (its branch), at most `limit` bytes.

    ConflictError when there is nothing to show yet or the repository cannot be read here.
    """
    session = workflow.session
    if not session.repository:
        raise ConflictError("the session has no repository: its work has no diff", field="repository")
    if workflow.merge_commit:
        base, head, of = f"{workflow.merge_commit}^1", workflow.merge_commit, "merge"
        shas = [workflow.merge_commit]
    elif workflow.base_sha and workflow.head_sha:
        base, head, of = workflow.base_sha, workflow.head_sha, "branch"
        shas = [base, head]
    else:
        raise ConflictError("the workflow has no branch yet", field="branch")
    if not all(SHA.match(sha) for sha in shas):
        raise ConflictError("the workflow's recorded commits are not commit ids", field="branch")
    where = repository_readable_copy(session.repository)
    if where is None:
        raise ConflictError(f"no copy of {session.repository} on this server to read the diff from", field="repository")
    options = ["--no-color", "--no-ext-diff", "--no-textconv", "--no-renames"]
    names = _git_text(["diff", *options, "--name-only", base, head, "--"], cwd=where)
    diff, truncated = _git_bounded(["diff", *options, base, head, "--"], cwd=where, limit=limit)
    return WorkflowDiff(
        base=base if of == "branch" else _git_text(["rev-parse", base], cwd=where).strip(),
        head=head,
        of=of,
        diff=diff,
        truncated=truncated,
        files=[line for line in names.splitlines() if line],
    )


def _git_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def _git_text(args: list[str], *, cwd: Path) -> str:
    text, _ = _git_bounded(args, cwd=cwd, limit=DIFF_LIMIT_BYTES)
    return text


def _git_bounded(args: list[str], *, cwd: Path, limit: int) -> tuple[str, bool]:
    """stdout of a read-only git command, cut at `limit` bytes (the process is stopped there)."""
    argv = ["git", "--no-pager", *args]
    with subprocess.Popen(
        argv, cwd=cwd, env=_git_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            data = process.stdout.read(limit + 1)
            truncated = len(data) > limit
            if truncated:
                process.kill()
            _, stderr = process.communicate(timeout=DIFF_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            raise ConflictError("git took too long to produce the diff", field="diff") from exc
    if not truncated and process.returncode != 0:
        reason = stderr.decode(errors="replace").strip().splitlines()
        raise ConflictError(
            f"git cannot show these commits here ({reason[0] if reason else 'exit ' + str(process.returncode)})",
            field="diff",
        )
    if truncated:
        # Cut before the file that did not fit, so what is shown is whole files (or, failing that, whole lines).
        kept = data[:limit]
        boundary = kept.rfind(b"\ndiff --git ")
        data = kept[: boundary + 1] if boundary > 0 else kept[: kept.rfind(b"\n") + 1]
    return data.decode(errors="replace"), truncated
