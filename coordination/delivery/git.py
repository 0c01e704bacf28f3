"""Run git as a program: argv lists, an isolated environment, one error type.

Every call names its working directory. No user or system configuration, no hooks, no prompts:
what the hive does with git depends only on the arguments given here.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_TIMEOUT_S = 300.0
STDERR_LIMIT = 4000
# The identity of every commit the coordinator itself makes (merge commits) and the committer of all.
HIVE_NAME = "Agent Hive"
HIVE_EMAIL = "hive@hive.local"
# Settings passed on every call, so neither the user's config nor a repository's can change behaviour.
FIXED_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.autocrlf=false",
    "core.fsmonitor=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gc.auto=0",
    "advice.detachedHead=false",
    "init.defaultBranch=main",
)
# Variables that may reach git from the daemon's environment (ssh clones need the agent socket).
ENV_PASSTHROUGH = ("PATH", "HOME", "TMPDIR", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND")
SHA = re.compile(r"^[0-9a-f]{40}$")


class GitError(Exception):
    """A git command that failed: the command, where it ran, its exit code and what it said."""

    def __init__(self, *, argv: list[str], cwd: str, exit_code: int | None, stderr: str):
        self.argv = list(argv)
        self.cwd = cwd
        self.exit_code = exit_code
        self.stderr = stderr[-STDERR_LIMIT:]
        shown = " ".join(argv)
        detail = self.stderr.strip() or "no message"
        super().__init__(f"`{shown}` in {cwd} exited {exit_code}: {detail}")


@dataclass(frozen=True)
class GitResult:
    exit_code: int
    stdout: str
    stderr: str


def git_env(*, author: tuple[str, str] | None = None) -> dict[str, str]:
    """The environment of every git call: isolated from user and system config, never prompting."""
    env = {name: os.environ[name] for name in ENV_PASSTHROUGH if name in os.environ}
    env.setdefault("PATH", os.defpath)
    name, email = author or (HIVE_NAME, HIVE_EMAIL)
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "LC_ALL": "C",
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": HIVE_NAME,
            "GIT_COMMITTER_EMAIL": HIVE_EMAIL,
        }
    )
    return env


def git(
    *args: str,
    cwd: str | Path,
    check: bool = True,
    ok_codes: tuple[int, ...] = (0,),
    author: tuple[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> GitResult:
    """Run `git <args>` in `cwd`; a non-accepted exit code raises GitError when `check`."""
    argv = ["git"]
    for setting in FIXED_CONFIG:
        argv += ["-c", setting]
    argv += list(args)
    shown = ["git", *args]
    try:
        proc = subprocess.run(
            argv,
            cwd=str(cwd),
            env=git_env(author=author),
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(argv=shown, cwd=str(cwd), exit_code=None, stderr=f"timed out after {timeout:g} s") from exc
    except OSError as exc:
        raise GitError(argv=shown, cwd=str(cwd), exit_code=None, stderr=str(exc)) from exc
    if check and proc.returncode not in ok_codes:
        raise GitError(argv=shown, cwd=str(cwd), exit_code=proc.returncode, stderr=proc.stderr or proc.stdout)
    return GitResult(exit_code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def rev_parse(*, cwd: str | Path, rev: str) -> str | None:
    """The commit (or object) `rev` names, or None when it does not exist."""
    result = git("rev-parse", "--verify", "--quiet", "--end-of-options", rev, cwd=cwd, ok_codes=(0, 1))
    sha = result.stdout.strip()
    return sha if result.exit_code == 0 and sha else None


def is_ancestor(*, cwd: str | Path, ancestor: str, descendant: str) -> bool:
    result = git("merge-base", "--is-ancestor", ancestor, descendant, cwd=cwd, ok_codes=(0, 1))
    return result.exit_code == 0


def branch_name_valid(name: str) -> bool:
    """Whether git accepts `name` as a branch name (the one rule, asked of git itself)."""
    if not name or name.startswith("-"):
        return False
    result = git("check-ref-format", "--branch", name, cwd="/", check=False)
    return result.exit_code == 0


@lru_cache(maxsize=1)
def git_version() -> tuple[int, ...]:
    output = git("--version", cwd="/").stdout
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", output)
    if not match:
        return (0,)
    return tuple(int(part) for part in match.groups() if part is not None)


def merge_tree_supported() -> bool:
    """`git merge-tree --write-tree` (a merge without any worktree) arrived in git 2.38."""
    return git_version() >= (2, 38)
