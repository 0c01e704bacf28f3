"""Attempt worktrees, fenced branch moves and merges, with real git in temporary repositories."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from coordination.delivery.git import GitError, branch_name_valid, merge_tree_supported
from coordination.delivery.merger import MergeStatus, merge_workflow
from coordination.delivery.workspace import (
    POOL_PREFIX,
    WorkingCopyConflict,
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

from .conftest import run_git, snapshot

TARGET = "hive/s/main"


def deliver_attempt(clone, *, workflow: str, name: str, edits: dict[str, str], agent: str = "dev-1"):
    """One attempt: worktree from the workflow head, the agent's edits, leftovers committed, branch advanced."""
    head = workflow_branch_ensure(clone, branch=workflow, target=TARGET)
    worktree = worktree_add(clone, name=name, branch=f"hive/s/{name}", start=head)
    for path, text in edits.items():
        (worktree.path / path).write_text(text)
    new_head = commit_leftovers(worktree, author=(agent, f"{agent}@hive.local"), message=f"{name}: edits")
    assert advance_allowed(cwd=clone.path, old=head, new=new_head)
    assert branch_push(clone, branch=workflow, new=new_head, expected_old=head)
    return worktree, head, new_head


def merge(clone, workflow: str, verify=()):
    return merge_workflow(
        clone, workflow_branch=workflow, target_branch=TARGET, verify_commands=list(verify), message=f"Merge {workflow}"
    )


def test_git_here_supports_merge_tree_write_tree():
    assert merge_tree_supported()


def test_branch_names_are_checked_by_git():
    assert branch_name_valid("hive/s/main")
    assert not branch_name_valid("a..b")
    assert not branch_name_valid("-x")
    assert not branch_name_valid("")


def test_two_parallel_attempts_on_different_files_both_merge(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    target_ensure(clone, branch=TARGET)
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(
            lambda args: deliver_attempt(clone, workflow=args[0], name=args[1], edits=args[2], agent=args[3]),
            [
                ("hive/s/w1", "t1-a1", {"a.txt": "from one\n"}, "dev-1"),
                ("hive/s/w2", "t2-a1", {"b.txt": "from two\n"}, "dev-2"),
            ],
        )
    assert changed_files(cwd=clone.path, base=first[1], head=first[2]) == ["a.txt"]
    assert [merge(clone, "hive/s/w1").status, merge(clone, "hive/s/w2").status] == [MergeStatus.MERGED] * 2
    assert run_git("show", f"{TARGET}:a.txt", cwd=user_repo) == "from one"
    assert run_git("show", f"{TARGET}:b.txt", cwd=user_repo) == "from two"
    authors = run_git("log", "--format=%an <%ae>|%cn", TARGET, cwd=user_repo).splitlines()
    assert "dev-1 <dev-1@hive.local>|Agent Hive" in authors and "dev-2 <dev-2@hive.local>|Agent Hive" in authors
    for worktree, _, _ in (first, second):
        worktree_remove(clone, worktree)
        assert not worktree.path.exists()
        assert run_git("branch", "--list", worktree.branch, cwd=clone.path) == ""
    # merging again is a no-op, never a second merge commit
    assert merge(clone, "hive/s/w1").status == MergeStatus.ALREADY_MERGED


def test_same_lines_conflict_is_reported_with_hunks_and_nothing_moves(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    target_ensure(clone, branch=TARGET)
    deliver_attempt(clone, workflow="hive/s/w1", name="t1-a1", edits={"shared.txt": "one\nTWO by one\nthree\n"})
    deliver_attempt(clone, workflow="hive/s/w2", name="t2-a1", edits={"shared.txt": "one\nTWO by two\nthree\n"})
    assert merge(clone, "hive/s/w1").status == MergeStatus.MERGED
    target_before = run_git("rev-parse", TARGET, cwd=user_repo)
    result = merge(clone, "hive/s/w2")
    assert result.status == MergeStatus.CONFLICT
    assert [conflict.path for conflict in result.conflicts] == ["shared.txt"]
    (hunk,) = result.conflicts[0].hunks
    assert "TWO by one" in hunk and "TWO by two" in hunk and hunk.startswith("<<<<<<<")
    assert "CONFLICT" in result.messages
    assert run_git("rev-parse", TARGET, cwd=user_repo) == target_before, "nothing half-merged"


def test_conflict_resolved_in_a_new_attempt_with_the_target_merged_in(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    target_ensure(clone, branch=TARGET)
    deliver_attempt(clone, workflow="hive/s/w1", name="t1-a1", edits={"shared.txt": "one\nTWO by one\nthree\n"})
    deliver_attempt(clone, workflow="hive/s/w2", name="t2-a1", edits={"shared.txt": "one\nTWO by two\nthree\n"})
    merge(clone, "hive/s/w1")
    head = clone.remote_head("hive/s/w2")
    worktree = worktree_add(clone, name="t3-a1", branch="hive/s/t3-a1", start=head)
    assert merge_target_into(worktree, clone=clone, target=TARGET) == ["shared.txt"]
    assert "<<<<<<<" in (worktree.path / "shared.txt").read_text()
    (worktree.path / "shared.txt").write_text("one\nTWO by both\nthree\n")
    resolved = commit_leftovers(worktree, author=("dev-2", "dev-2@hive.local"), message="resolve")
    assert len(run_git("rev-list", "--parents", "-n1", resolved, cwd=clone.path).split()) == 3, "a merge commit"
    assert branch_push(clone, branch="hive/s/w2", new=resolved, expected_old=head)
    assert merge(clone, "hive/s/w2").status == MergeStatus.MERGED
    assert run_git("show", f"{TARGET}:shared.txt", cwd=user_repo) == "one\nTWO by both\nthree"


def test_users_working_copy_is_byte_for_byte_unchanged(user_repo, root):
    before = snapshot(user_repo)
    head_before = run_git("rev-parse", "HEAD", cwd=user_repo)
    clone = clone_open(root=root, repository=str(user_repo))
    target_ensure(clone, branch=TARGET)
    worktree, _, _ = deliver_attempt(clone, workflow="hive/s/w1", name="t1-a1", edits={"README.md": "# changed\n"})
    assert merge(clone, "hive/s/w1", verify=[["true"]]).status == MergeStatus.MERGED
    worktree_remove(clone, worktree)
    after = snapshot(user_repo)
    working_files = {name for name in before if not name.startswith(".git/")}
    assert {name: after[name] for name in working_files} == {name: before[name] for name in working_files}
    assert after[".git/HEAD"] == before[".git/HEAD"]
    assert after[".git/index"] == before[".git/index"]
    assert run_git("rev-parse", "HEAD", cwd=user_repo) == head_before
    assert run_git("rev-parse", "main", cwd=user_repo) == head_before
    assert run_git("status", "--porcelain", cwd=user_repo).splitlines() == [
        "M README.md",
        "?? scratch.txt",
    ]  # (leading space stripped)
    assert run_git("show", f"{TARGET}:README.md", cwd=user_repo) == "# changed"


def test_checked_out_target_branch_is_refused(user_repo, root):
    # even a user who lets pushes update their working tree keeps it: the hive's pushes refuse checked-out branches
    run_git("config", "receive.denyCurrentBranch", "updateInstead", cwd=user_repo)
    before = snapshot(user_repo)
    clone = clone_open(root=root, repository=str(user_repo))
    head = clone.remote_head("main")
    _, _, new_head = deliver_attempt(clone, workflow="hive/s/w1", name="t1-a1", edits={"x.txt": "x\n"})
    with pytest.raises(WorkingCopyConflict, match="checked out"):
        branch_push(clone, branch="main", new=new_head, expected_old=head, check_working_copy=True)
    with pytest.raises(GitError, match="checked out"):
        branch_push(clone, branch="main", new=new_head, expected_old=head)
    with pytest.raises(WorkingCopyConflict):
        merge_workflow(clone, workflow_branch="hive/s/w1", target_branch="main", verify_commands=[], message="m")
    assert run_git("rev-parse", "main", cwd=user_repo) == head
    assert {k: v for k, v in snapshot(user_repo).items() if not k.startswith(".git/")} == {
        k: v for k, v in before.items() if not k.startswith(".git/")
    }


def test_a_late_attempt_can_never_move_the_workflow_branch(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    start = workflow_branch_ensure(clone, branch="hive/s/w1", target=TARGET)
    late = worktree_add(clone, name="t1-a1", branch="hive/s/t1-a1", start=start)
    current = worktree_add(clone, name="t1-a2", branch="hive/s/t1-a2", start=start)
    (late.path / "late.txt").write_text("late\n")
    (current.path / "current.txt").write_text("current\n")
    late_head = commit_leftovers(late, author=("dev-1", "dev-1@hive.local"), message="late")
    current_head = commit_leftovers(current, author=("dev-2", "dev-2@hive.local"), message="current")
    assert branch_push(clone, branch="hive/s/w1", new=current_head, expected_old=start)
    assert not branch_push(clone, branch="hive/s/w1", new=late_head, expected_old=start)
    assert run_git("rev-parse", "hive/s/w1", cwd=user_repo) == current_head
    assert not advance_allowed(cwd=clone.path, old=current_head, new=late_head)


def test_a_claim_that_changes_nothing_has_the_same_tree(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    start = workflow_branch_ensure(clone, branch="hive/s/w1", target=TARGET)
    worktree = worktree_add(clone, name="t1-a1", branch="hive/s/t1-a1", start=start)
    head = commit_leftovers(worktree, author=("dev-1", "dev-1@hive.local"), message="nothing")
    assert head == start
    assert same_tree(cwd=clone.path, base=start, head=head)
    # an empty commit made by the agent changes no tree either
    run_git("commit", "-q", "--allow-empty", "-m", "All done, tests pass!", cwd=worktree.path)
    assert same_tree(cwd=clone.path, base=start, head=run_git("rev-parse", "HEAD", cwd=worktree.path))


def test_merge_verify_failure_leaves_the_target_where_it_was(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    target = target_ensure(clone, branch=TARGET)
    deliver_attempt(clone, workflow="hive/s/w1", name="t1-a1", edits={"broken.txt": "bad\n"})
    result = merge(clone, "hive/s/w1", verify=[["sh", "-c", "test ! -e broken.txt || { echo broken >&2; exit 3; }"]])
    assert result.status == MergeStatus.VERIFY_FAILED
    assert result.verify[0].exit_code == 3 and "broken" in result.verify[0].output_tail
    assert run_git("rev-parse", TARGET, cwd=user_repo) == target
    names = [path.name for path in clone.worktrees.iterdir() if not path.name.startswith(POOL_PREFIX)]
    assert names == ["t1-a1"], "the merge's own worktree is removed"


def test_shared_bare_repository_lets_another_daemon_continue(bare_repo, tmp_path):
    one = clone_open(root=tmp_path / "root-one", repository=str(bare_repo))
    two = clone_open(root=tmp_path / "root-two", repository=str(bare_repo))
    assert one.path != two.path
    deliver_attempt(one, workflow="hive/s/w1", name="t1-a1", edits={"a.txt": "one\n"})
    # the other daemon fetches, sees the workflow branch and carries on from its head
    two = clone_open(root=tmp_path / "root-two", repository=str(bare_repo))
    worktree, head, _ = deliver_attempt(two, workflow="hive/s/w1", name="t2-a1", edits={"b.txt": "two\n"})
    assert (worktree.path / "a.txt").read_text() == "one\n"
    assert merge(two, "hive/s/w1").status == MergeStatus.MERGED
    assert merge(one, "hive/s/w1").status == MergeStatus.ALREADY_MERGED


def test_stale_worktrees_are_pruned_at_start_except_running_ones(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    start = workflow_branch_ensure(clone, branch="hive/s/w1", target=TARGET)
    stale = worktree_add(clone, name="t1-a1", branch="hive/s/t1-a1", start=start)
    running = worktree_add(clone, name="t2-a1", branch="hive/s/t2-a1", start=start)
    assert worktrees_prune(clone, keep={"t2-a1"}) == ["t1-a1"]
    assert not stale.path.exists() and running.path.exists()
    assert run_git("branch", "--list", "hive/s/t1-a1", cwd=clone.path) == ""
    # a worktree with the same name again (the retried attempt after a crash) starts clean
    again = worktree_add(clone, name="t2-a1", branch="hive/s/t2-a1", start=start)
    assert again.path.exists()


def test_a_repository_that_is_not_git_is_a_git_error(tmp_path, root):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError) as caught:
        clone_open(root=root, repository=str(plain))
    assert caught.value.exit_code and caught.value.stderr


def test_a_recycled_worktree_holds_nothing_of_the_previous_attempt(user_repo, root):
    clone = clone_open(root=root, repository=str(user_repo))
    start = workflow_branch_ensure(clone, branch="hive/s/w1", target=TARGET)
    first = worktree_add(clone, name="t1-a1", branch="hive/s/t1-a1", start=start)
    (first.path / "committed.txt").write_text("committed\n")
    commit_leftovers(first, author=("dev-1", "dev-1@hive.local"), message="one")
    (first.path / "untracked.txt").write_text("left behind\n")
    (first.path / "shared.txt").write_text("dirty\n")
    worktree_remove(clone, first)
    assert not first.path.exists()
    assert run_git("branch", "--list", "hive/s/t1-a1", cwd=clone.path) == ""
    second = worktree_add(clone, name="t2-a1", branch="hive/s/t2-a1", start=start)
    assert sorted(path.name for path in second.path.iterdir()) == [".git", "README.md", "shared.txt"]
    assert (second.path / "shared.txt").read_text() == "one\ntwo\nthree\n"
    assert run_git("rev-parse", "HEAD", cwd=second.path) == start
    assert run_git("symbolic-ref", "--short", "HEAD", cwd=second.path) == "hive/s/t2-a1"
