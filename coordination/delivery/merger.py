"""Merge a workflow branch onto its target without any checkout of the target, verify, then move it.

`git merge-tree --write-tree` computes the merge in the object store (git >= 2.38); a clean result
becomes a merge commit (`commit-tree`), is checked out detached in a throwaway worktree for the
session's verify commands, and only then replaces the target by compare-and-swap. A conflict moves
nothing: the conflicted files and their hunks are returned.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .git import GitError, git, is_ancestor, merge_tree_supported
from .verify import CommandRun, verify_passed, verify_run
from .workspace import Clone, branch_push, clone_fetch, refuse_checked_out, worktree_add, worktree_remove

HUNK_LIMIT_CHARS = 4000
HUNKS_PER_FILE = 20
CONFLICT_START = "<<<<<<<"
CONFLICT_END = ">>>>>>>"


class MergeStatus(enum.StrEnum):
    MERGED = "merged"
    ALREADY_MERGED = "already_merged"
    CONFLICT = "conflict"
    VERIFY_FAILED = "verify_failed"
    TARGET_MOVED = "target_moved"  # another merger moved the target first: try again


@dataclass(frozen=True)
class ConflictFile:
    path: str
    hunks: list[str]


@dataclass(frozen=True)
class MergeResult:
    status: MergeStatus
    target_before: str
    workflow_head: str
    merge_commit: str = ""
    conflicts: list[ConflictFile] = field(default_factory=list)
    verify: list[CommandRun] = field(default_factory=list)
    messages: str = ""


@dataclass(frozen=True)
class TreeMerge:
    tree: str
    conflicts: list[ConflictFile]
    messages: str


def merge_tree(*, cwd, ours: str, theirs: str) -> TreeMerge:
    """The merged tree of two commits, and the conflicts (with their marker hunks) if any; no worktree touched."""
    if not merge_tree_supported():
        raise GitError(argv=["git", "merge-tree"], cwd=str(cwd), exit_code=None, stderr="git >= 2.38 is required")
    result = git(
        "merge-tree", "--write-tree", "--name-only", "-z", "--messages", ours, theirs, cwd=cwd, ok_codes=(0, 1)
    )
    # output: <tree> NUL, then (on conflict) conflicted paths each NUL-terminated, an empty field, then messages
    fields = result.stdout.split("\0")
    tree, rest = fields[0], fields[1:]
    paths: list[str] = []
    if result.exit_code == 1:
        while rest and rest[0]:
            paths.append(rest.pop(0))
        rest = rest[1:]
    messages = "".join(_messages(rest))
    conflicts = [ConflictFile(path=path, hunks=_hunks(cwd=cwd, tree=tree, path=path)) for path in dict.fromkeys(paths)]
    return TreeMerge(tree=tree, conflicts=conflicts, messages=messages[:HUNK_LIMIT_CHARS])


def _messages(fields: list[str]) -> list[str]:
    """Informational messages: each is <count> NUL <paths…> NUL <type> NUL <text> NUL."""
    texts, index = [], 0
    while index < len(fields) and fields[index].isdigit():
        count = int(fields[index])
        text_index = index + count + 2
        if text_index < len(fields):
            texts.append(fields[text_index])
        index = text_index + 1
    return texts


def _hunks(*, cwd, tree: str, path: str) -> list[str]:
    """The conflict-marker regions git wrote into the merged file (none for a modify/delete conflict)."""
    shown = git("cat-file", "-p", f"{tree}:{path}", cwd=cwd, check=False)
    if shown.exit_code != 0:
        return []
    hunks, current = [], None
    for line in shown.stdout.splitlines():
        if line.startswith(CONFLICT_START) and current is None:
            current = [line]
        elif current is not None:
            current.append(line)
            if line.startswith(CONFLICT_END):
                hunks.append("\n".join(current)[:HUNK_LIMIT_CHARS])
                current = None
                if len(hunks) >= HUNKS_PER_FILE:
                    break
    return hunks


def merge_workflow(
    clone: Clone,
    *,
    workflow_branch: str,
    target_branch: str,
    verify_commands: list[list[str]],
    message: str,
    verify_timeout_s: float = 600.0,
    worktree_name: str = "",
    keep_worktree: bool = False,
    fetch: bool = True,
) -> MergeResult:
    """One merge of `workflow_branch` onto `target_branch` in the session repository; the target only moves
    when the merge is clean and its verification passed, and only from the head this merge started from.

    `fetch=False` merges against the clone's current view: a stale view costs a TARGET_MOVED (the clone
    is fetched then), never a wrong merge.
    """
    refuse_checked_out(repository=clone.repository, branch=target_branch)
    if fetch:
        clone_fetch(clone)
    target = clone.remote_head(target_branch)
    head = clone.remote_head(workflow_branch)
    if not target or not head:
        missing = target_branch if not target else workflow_branch
        raise GitError(argv=["git", "rev-parse", missing], cwd=str(clone.path), exit_code=None, stderr="no such branch")
    if is_ancestor(cwd=clone.path, ancestor=head, descendant=target):
        return MergeResult(status=MergeStatus.ALREADY_MERGED, target_before=target, workflow_head=head)
    merged = merge_tree(cwd=clone.path, ours=target, theirs=head)
    if merged.conflicts:
        return MergeResult(
            status=MergeStatus.CONFLICT,
            target_before=target,
            workflow_head=head,
            conflicts=merged.conflicts,
            messages=merged.messages,
        )
    commit = git("commit-tree", merged.tree, "-p", target, "-p", head, "-m", message, cwd=clone.path).stdout.strip()
    runs: list[CommandRun] = []
    if verify_commands:
        checkout = worktree_add(clone, name=worktree_name or f"merge-{commit[:12]}", branch="", start=commit)
        try:
            runs = verify_run(commands=verify_commands, cwd=checkout.path, timeout_s=verify_timeout_s)
        finally:
            if not keep_worktree:
                worktree_remove(clone, checkout)
        if not verify_passed(runs):
            return MergeResult(
                status=MergeStatus.VERIFY_FAILED,
                target_before=target,
                workflow_head=head,
                merge_commit=commit,
                verify=runs,
            )
    if not branch_push(clone, branch=target_branch, new=commit, expected_old=target):
        return MergeResult(status=MergeStatus.TARGET_MOVED, target_before=target, workflow_head=head, verify=runs)
    return MergeResult(
        status=MergeStatus.MERGED, target_before=target, workflow_head=head, merge_commit=commit, verify=runs
    )
