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
import uuid
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
# parked worktrees kept per clone for reuse (a checkout of a big repository costs seconds, a switch milliseconds)
POOL_PREFIX = "free-"
POOL_SIZE = 24


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


def branch_push(
    clone: Clone, *, branch: str, new: str, expected_old: str | None, check_working_copy: bool = False
) -> bool:
    """Compare-and-swap the session repository's `branch` from `expected_old` (None: must not exist) to `new`.

    False when the branch no longer has the expected value (another attempt or merger moved it first).
    The receiving side always refuses to move a branch checked out in a working copy, whatever its config says.
    """
    if check_working_copy:
        refuse_checked_out(repository=clone.repository, branch=branch)
    ref = f"refs/heads/{branch}"
    lease = f"--force-with-lease={ref}:{expected_old or ''}"
    argv = ["push", "--porcelain", "--quiet", lease, *_receive_pack(clone), REMOTE, f"{new}:{ref}"]
    with clone_lock(clone):
        result = git(*argv, cwd=clone.path, ok_codes=(0, 1))
        if result.exit_code == 0:
            return True  # push moved the remote-tracking ref too (the fetch refspec maps it)
        # "[rejected] (stale info)": the lease did not hold; "[remote rejected] (…)": the repository said no
        lost_race = any(
            line.startswith(REJECTED + "\t") and "\t[rejected]" in line for line in result.stdout.splitlines()
        )
        if not lost_race:
            raise GitError(
                argv=["git", *argv],
                cwd=str(clone.path),
                exit_code=result.exit_code,
                stderr=(result.stderr + result.stdout).strip(),
            )
        _fetch(clone)
        return False


def _receive_pack(clone: Clone) -> list[str]:
    """For a repository on this machine: its receive-pack refuses checked-out branches and runs no hooks."""
    if "://" in clone.repository or ":" in clone.repository.split("/")[0]:
        return []
    return ["--receive-pack=git -c receive.denyCurrentBranch=refuse -c core.hooksPath=/dev/null receive-pack"]


def branch_delete_remote(clone: Clone, *, branch: str, expected_old: str) -> bool:
    return branch_push(clone, branch=branch, new="", expected_old=expected_old) if expected_old else False


def target_ensure(clone: Clone, *, branch: str) -> str:
    """The head of the target branch, created from the repository's HEAD when it does not exist yet."""
    existing = clone.remote_head(branch)
    if existing:
        return existing
    start = repository_head(clone)
    if not branch_push(clone, branch=branch, new=start, expected_old=None, check_working_copy=True):
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

    An empty `branch` makes a detached worktree (for verifying a merge). A recycled worktree from the
    clone's pool is preferred: switching it rewrites only the files that differ, where a new one writes all.
    """
    path = clone.worktrees / name
    with clone_lock(clone):
        _worktree_discard(clone, path=path, branch=branch)
        recycled = _pool_take(clone, path=path)
    if not recycled:
        # a full checkout takes long: outside the lock (git locks the new branch and worktree record itself)
        target = ["--no-track", "-b", branch] if branch else ["--detach"]
        git("worktree", "add", "--quiet", *target, str(path), start, cwd=clone.path)
    else:
        try:
            target = ["--no-track", "-B", branch, start] if branch else ["--detach", start]
            git("checkout", "--quiet", "--force", *target, cwd=path)
            # nothing of the previous attempt may remain: untracked and ignored files go too
            git("clean", "-ffdxq", cwd=path)
        except GitError:
            worktree_remove(clone, Worktree(path=path, branch=branch, base_sha=start), recycle=False)
            return worktree_add(clone, name=name, branch=branch, start=start)
    return Worktree(path=path, branch=branch, base_sha=start)


def worktree_remove(clone: Clone, worktree: Worktree, *, recycle: bool = True) -> None:
    """Remove an attempt's worktree and its local branch; its folder may be kept, emptied of the attempt, for reuse."""
    with clone_lock(clone):
        if recycle and worktree.path.exists() and _pool_put(clone, worktree=worktree):
            return
        _worktree_discard(clone, path=worktree.path, branch=worktree.branch)


def _pool_take(clone: Clone, *, path: Path) -> bool:
    free = sorted(clone.worktrees.glob(POOL_PREFIX + "*"))
    if not free:
        return False
    result = git("worktree", "move", str(free[0]), str(path), cwd=clone.path, check=False)
    if result.exit_code != 0:
        _worktree_discard(clone, path=free[0], branch="")
        return False
    return True


def _pool_put(clone: Clone, *, worktree: Worktree) -> bool:
    """Detach the worktree from its branch, delete the branch and park the folder under a pool name."""
    if len(list(clone.worktrees.glob(POOL_PREFIX + "*"))) >= POOL_SIZE:
        return False
    try:
        git("checkout", "--quiet", "--detach", cwd=worktree.path)
        if worktree.branch and rev_parse(cwd=clone.path, rev=f"refs/heads/{worktree.branch}"):
            git("branch", "--quiet", "-D", worktree.branch, cwd=clone.path)
        git(
            "worktree",
            "move",
            str(worktree.path),
            str(clone.worktrees / f"{POOL_PREFIX}{uuid.uuid4().hex[:12]}"),
            cwd=clone.path,
        )
    except GitError:
        return False
    return True


def _worktree_discard(clone: Clone, *, path: Path, branch: str) -> None:
    if path.exists():
        git("worktree", "remove", "--force", "--force", str(path), cwd=clone.path, check=False)
        shutil.rmtree(path, ignore_errors=True)
        git("worktree", "prune", cwd=clone.path)
    if branch and rev_parse(cwd=clone.path, rev=f"refs/heads/{branch}"):
        git("branch", "--quiet", "-D", branch, cwd=clone.path)


def worktrees_prune(clone: Clone, *, keep: set[str] = frozenset()) -> list[str]:
    """Remove this clone's worktrees (and their branches) except those named in `keep`: a restart's leftovers.

    The pool's parked worktrees are kept; they hold no attempt.
    """
    removed = []
    with clone_lock(clone):
        git("worktree", "prune", cwd=clone.path)
        branches = _worktree_branches(clone)
        for path in sorted(clone.worktrees.iterdir()) if clone.worktrees.exists() else []:
            if path.name in keep or path.name.startswith(POOL_PREFIX):
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
    """Commit whatever the agent left uncommitted, as the agent; the worktree's head afterwards.

    A merge the worktree is in the middle of (conflict resolution) is concluded by this commit.
    """
    git("add", "--all", cwd=worktree.path)
    result = git("commit", "--quiet", "--no-verify", "-m", message, cwd=worktree.path, author=author, ok_codes=(0, 1))
    if result.exit_code == 1 and "nothing to commit" not in result.stdout + result.stderr:
        raise GitError(
            argv=["git", "commit"], cwd=str(worktree.path), exit_code=1, stderr=(result.stderr + result.stdout).strip()
        )
    return rev_parse(cwd=worktree.path, rev="HEAD") or worktree.base_sha


def changed_files(*, cwd: str | Path, base: str, head: str) -> list[str]:
    output = git("diff", "--name-only", "-z", "--no-renames", base, head, cwd=cwd).stdout
    return [name for name in output.split("\0") if name]


def same_tree(*, cwd: str | Path, base: str, head: str) -> bool:
    """True when `head` changes nothing against `base`, whatever its commits say."""
    if base.startswith("-") or head.startswith("-"):
        raise ValueError("a revision, not an option, is expected")
    trees = git("rev-parse", f"{base}^{{tree}}", f"{head}^{{tree}}", cwd=cwd)
    first, second = trees.stdout.split()
    return first == second


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
