"""What a runtime may read from, and write to, the attempt's git worktree.

Plain subprocess calls with argument lists (never a shell string), a fixed identity and no
user or system git configuration, so the result does not depend on the machine's settings.
Every path comes from the worktree itself or is checked to stay inside it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 60
COMMITTER = ("Agent Hive", "hive@localhost")


class WorktreeError(Exception):
    """A git command failed; the message carries git's own explanation."""


def git(worktree: str | Path, *args: str, check: bool = True) -> str:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("GIT_")},
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_COMMITTER_NAME": COMMITTER[0],
        "GIT_COMMITTER_EMAIL": COMMITTER[1],
    }
    try:
        proc = subprocess.run(
            ["git", "-c", "core.hooksPath=/dev/null", *args],
            cwd=worktree,
            env=env,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorktreeError(f"git {args[0]}: {exc}") from exc
    if check and proc.returncode != 0:
        message = proc.stderr.decode("utf-8", errors="replace").strip() or f"exit code {proc.returncode}"
        raise WorktreeError(f"git {args[0]}: {message}")
    return proc.stdout.decode("utf-8", errors="replace")


def is_worktree(path: str | Path) -> bool:
    if not Path(path).is_dir():
        return False
    try:
        return git(path, "rev-parse", "--is-inside-work-tree").strip() == "true"
    except WorktreeError:
        return False


def tracked_files(worktree: str | Path) -> list[str]:
    return [line for line in git(worktree, "ls-files", "-z").split("\0") if line]


def diff_from(worktree: str | Path, *, base: str) -> str:
    """Everything changed since `base`: commits on the branch and what is not committed yet."""
    return git(worktree, "diff", "--no-color", "--no-ext-diff", base, "--")


def diffstat_from(worktree: str | Path, *, base: str) -> str:
    return git(worktree, "diff", "--no-color", "--stat", base, "--")


def inside(worktree: str | Path, relative: str) -> Path | None:
    """The file `relative` names inside the worktree, or None when it leads outside or into .git."""
    if not relative or "\0" in relative or Path(relative).is_absolute():
        return None
    root = Path(os.path.realpath(worktree))
    target = Path(os.path.realpath(root / relative))
    if target == root or root not in target.parents:
        return None
    if ".git" in target.relative_to(root).parts:
        return None
    return target


def commit_all(worktree: str | Path, *, message: str, author: str) -> str | None:
    """Commit every change in the worktree as `author`; the new commit's sha, or None if nothing changed."""
    git(worktree, "add", "--all")
    if not git(worktree, "status", "--porcelain", "--untracked-files=no").strip():
        return None
    name = author or "agent"
    git(worktree, "commit", "--quiet", "--no-verify", "-m", message, f"--author={name} <{_email(name)}>")
    return git(worktree, "rev-parse", "HEAD").strip()


def _email(name: str) -> str:
    local = "".join(char if char.isalnum() or char in "._-" else "-" for char in name.lower()).strip("-.")
    return f"{local or 'agent'}@hive.local"
