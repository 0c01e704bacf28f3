"""A daemon's own clone of a session repository, and the worktrees its attempts run in.

Layout under the daemon's workspace root: `.hive-clones/<hash>/repo.git` (a bare clone whose `origin`
is the session's repository) and `.hive-clones/<hash>/worktrees/<name>` (one per attempt or merge).
The session's repository is only ever an object store and refs: nothing here checks out, resets,
stashes or cleans its working tree. Branches travel to it by push, each a compare-and-swap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .git import GitError, git, is_ancestor, rev_parse

CLONES_DIR = ".hive-clones"
REMOTE = "origin"
FETCH_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
DIFF_LIMIT_BYTES = 512 * 1024
# push --porcelain flags a ref it refused with "!": the lease (expected old value) did not hold
REJECTED = "!"


class WorkingCopyConflict(GitError):
    """The branch the hive would move is checked out in the user's own working copy."""


@dataclass(frozen=True)
class Clone:
    repository: str
    path: Path
    worktrees: Path
    lock_file: Path

    def remote_ref(self, branch: str) -> str:
        return f"refs/remotes/{REMOTE}/{branch}"

    def remote_head(self, branch: str) -> str | None:
        return rev_parse(cwd=self.path, rev=self.remote_ref(branch) + "^{commit}")


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str  # empty for a detached worktree (merge verification)
    base_sha: str


def clone_home(*, root: str | Path, repository: str) -> Path:
    digest = hashlib.sha256(repository.encode()).hexdigest()[:16]
    return Path(root) / CLONES_DIR / digest


def clone_open(*, root: str | Path, repository: str) -> Clone:
    """This daemon's clone of `repository` (made on first use), fetched."""
    home = clone_home(root=root, repository=repository)
    clone = Clone(repository=repository, path=home / "repo.git", worktrees=home / "worktrees", lock_file=home / "lock")
    home.mkdir(parents=True, exist_ok=True)
    with clone_lock(clone):
        if not (clone.path / "HEAD").exists():
            partial = home / "repo.git.partial"
            shutil.rmtree(partial, ignore_errors=True)
            git("init", "--quiet", "--bare", str(partial), cwd=home)
            git("remote", "add", REMOTE, repository, cwd=partial)
            git("config", "remote.origin.fetch", FETCH_REFSPEC, cwd=partial)
            # a clone appears whole or not at all: a daemon killed half-way leaves only the .partial folder
            partial.rename(clone.path)
        clone.worktrees.mkdir(exist_ok=True)
        _fetch(clone)
    return clone


@contextlib.contextmanager
def clone_lock(clone: Clone) -> Iterator[None]:
    """One writer of the clone's shared refs and worktree records at a time, across threads and processes."""
    with open(clone.lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clone_fetch(clone: Clone) -> None:
    with clone_lock(clone):
        _fetch(clone)


def _fetch(clone: Clone) -> None:
    git("fetch", "--quiet", "--prune", "--no-tags", REMOTE, FETCH_REFSPEC, cwd=clone.path)


def repository_head(clone: Clone) -> str:
    """The commit the session repository's HEAD names (what a new target branch starts from)."""
    output = git("ls-remote", "--symref", REMOTE, "HEAD", cwd=clone.path).stdout
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        if name == "HEAD" and not sha.startswith("ref:"):
            return sha.strip()
    raise GitError(
        argv=["git", "ls-remote", REMOTE, "HEAD"], cwd=str(clone.path), exit_code=0, stderr="repository has no commits"
    )


def checked_out_branches(repository: str) -> set[str]:
    """Branches checked out in a local repository's working trees (read from its git directory only)."""
    path = Path(repository)
    git_dir = path / ".git"
    if not git_dir.exists():
        return set()  # bare, or not a local path: nothing is checked out
    output = git(f"--git-dir={git_dir}", "worktree", "list", "--porcelain", cwd=path.parent).stdout
    prefix = "branch refs/heads/"
    return {line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)}


def refuse_checked_out(*, repository: str, branch: str) -> None:
    if branch in checked_out_branches(repository):
        raise WorkingCopyConflict(
            argv=["git", "worktree", "list"],
            cwd=repository,
            exit_code=None,
            stderr=f"branch {branch!r} is checked out in {repository}; the hive never moves a checked-out branch",
        )


def branch_push(clone: Clone, *, branch: str, new: str, expected_old: str | None) -> bool:
    """Compare-and-swap the session repository's `branch` from `expected_old` (None: must not exist) to `new`.

    False when the branch no longer has the expected value (another attempt or merger moved it first).
    """
    refuse_checked_out(repository=clone.repository, branch=branch)
    ref = f"refs/heads/{branch}"
    lease = f"--force-with-lease={ref}:{expected_old or ''}"
    with clone_lock(clone):
        result = git("push", "--porcelain", "--quiet", lease, REMOTE, f"{new}:{ref}", cwd=clone.path, ok_codes=(0, 1))
        if result.exit_code == 0:
            if new:
                git("update-ref", clone.remote_ref(branch), new, cwd=clone.path)
            else:
                git("update-ref", "-d", clone.remote_ref(branch), cwd=clone.path)
            return True
        refused = any(line.startswith(REJECTED + "\t") for line in result.stdout.splitlines())
        if not refused:
            raise GitError(
                argv=["git", "push", lease, REMOTE, f"{new}:{ref}"],
                cwd=str(clone.path),
                exit_code=result.exit_code,
                stderr=result.stderr or result.stdout,
            )
        _fetch(clone)
        return False


def branch_delete_remote(clone: Clone, *, branch: str, expected_old: str) -> bool:
    return branch_push(clone, branch=branch, new="", expected_old=expected_old) if expected_old else False


def target_ensure(clone: Clone, *, branch: str) -> str:
    """The head of the target branch, created from the repository's HEAD when it does not exist yet."""
    existing = clone.remote_head(branch)
    if existing:
        return existing
    start = repository_head(clone)
    if not branch_push(clone, branch=branch, new=start, expected_old=None):
        existing = clone.remote_head(branch)  # another daemon created it first
        if existing:
            return existing
    return start


def workflow_branch_ensure(clone: Clone, *, branch: str, target: str) -> str:
    """The workflow branch's head, made from the target's head if it does not exist yet."""
    existing = clone.remote_head(branch)
    if existing:
        return existing
    start = target_ensure(clone, branch=target)
    if branch_push(clone, branch=branch, new=start, expected_old=None):
        return start
    return clone.remote_head(branch) or start


def worktree_add(clone: Clone, *, name: str, branch: str, start: str) -> Worktree:
    """A fresh worktree `name` on a new local branch `branch` at commit `start` (stale leftovers replaced).

    An empty `branch` makes a detached worktree (for verifying a merge).
    """
    path = clone.worktrees / name
    with clone_lock(clone):
        _worktree_discard(clone, path=path, branch=branch)
        if branch:
            git("worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), start, cwd=clone.path)
        else:
            git("worktree", "add", "--quiet", "--detach", str(path), start, cwd=clone.path)
    return Worktree(path=path, branch=branch, base_sha=start)


def worktree_remove(clone: Clone, worktree: Worktree) -> None:
    with clone_lock(clone):
        _worktree_discard(clone, path=worktree.path, branch=worktree.branch)


def _worktree_discard(clone: Clone, *, path: Path, branch: str) -> None:
    if path.exists():
        git("worktree", "remove", "--force", "--force", str(path), cwd=clone.path, check=False)
        shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune", cwd=clone.path)
    if branch and rev_parse(cwd=clone.path, rev=f"refs/heads/{branch}"):
        git("branch", "--quiet", "-D", branch, cwd=clone.path)


def worktrees_prune(clone: Clone, *, keep: set[str] = frozenset()) -> list[str]:
    """Remove this clone's worktrees (and their branches) except those named in `keep`: a restart's leftovers."""
    removed = []
    with clone_lock(clone):
        git("worktree", "prune", cwd=clone.path)
        branches = _worktree_branches(clone)
        for path in sorted(clone.worktrees.iterdir()) if clone.worktrees.exists() else []:
            if path.name in keep:
                continue
            _worktree_discard(clone, path=path, branch=branches.get(str(path), ""))
            removed.append(path.name)
    return removed


def _worktree_branches(clone: Clone) -> dict[str, str]:
    output = git("worktree", "list", "--porcelain", cwd=clone.path).stdout
    branches, current = {}, ""
    for line in output.splitlines():
        if line.startswith("worktree "):
            current = line[len("worktree ") :]
        elif line.startswith("branch refs/heads/"):
            branches[current] = line[len("branch refs/heads/") :]
    return branches


def commit_leftovers(worktree: Worktree, *, author: tuple[str, str], message: str) -> str:
    """Commit whatever the agent left uncommitted, as the agent; the worktree's head afterwards."""
    git("add", "--all", cwd=worktree.path)
    staged = git("diff", "--cached", "--quiet", cwd=worktree.path, ok_codes=(0, 1))
    if staged.exit_code == 1 or _merging(worktree):
        git("commit", "--quiet", "--no-verify", "-m", message, cwd=worktree.path, author=author)
    return rev_parse(cwd=worktree.path, rev="HEAD") or worktree.base_sha


def _merging(worktree: Worktree) -> bool:
    return rev_parse(cwd=worktree.path, rev="MERGE_HEAD") is not None


def changed_files(*, cwd: str | Path, base: str, head: str) -> list[str]:
    output = git("diff", "--name-only", "-z", "--no-renames", base, head, cwd=cwd).stdout
    return [name for name in output.split("\0") if name]


def same_tree(*, cwd: str | Path, base: str, head: str) -> bool:
    """True when `head` changes nothing against `base`, whatever its commits say."""
    return rev_parse(cwd=cwd, rev=f"{base}^{{tree}}") == rev_parse(cwd=cwd, rev=f"{head}^{{tree}}")


def diff_text(*, cwd: str | Path, base: str, head: str, limit: int = DIFF_LIMIT_BYTES) -> tuple[str, bool]:
    """The unified diff `base`..`head` (bounded) and whether it was cut."""
    output = git("diff", "--no-color", "--no-ext-diff", base, head, cwd=cwd).stdout
    if len(output) <= limit:
        return output, False
    return output[:limit], True


def merge_target_into(worktree: Worktree, *, clone: Clone, target: str) -> list[str]:
    """Merge the current target into an attempt's worktree for a developer to resolve; the conflicted files.

    Conflicts stay in the files as markers; the coordinator's commit of the leftovers concludes the merge.
    """
    target_sha = clone.remote_head(target)
    if not target_sha or is_ancestor(cwd=worktree.path, ancestor=target_sha, descendant="HEAD"):
        return []
    result = git("merge", "--no-ff", "--no-commit", "--quiet", target_sha, cwd=worktree.path, ok_codes=(0, 1))
    if result.exit_code == 0:
        return []
    output = git("diff", "--name-only", "--diff-filter=U", "-z", cwd=worktree.path).stdout
    return [name for name in output.split("\0") if name]


def advance_allowed(*, cwd: str | Path, old: str, new: str) -> bool:
    """A workflow branch only moves forward: the attempt's head must contain the head it started from."""
    return is_ancestor(cwd=cwd, ancestor=old, descendant=new)
