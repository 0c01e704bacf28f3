"""What a session's `repository` and `target_branch` may be, asked of git itself.

Read-only questions only (rev-parse, ls-remote, check-ref-format, worktree list), each
an argv list with an explicit working directory, a time limit and no prompt; nothing
here changes a repository. Answers are plain values or a RepositoryProblem with the
words an operator needs; coordination.inputs turns them into field errors.

Local paths follow the workspace rule: the server writes branches into the repository
it is given, so a path from a request must lie inside HIVE_WORKSPACE_ROOTS, as a
workspace must (symlinks and ".." resolved first). A repository elsewhere is reached
by adding its parent directory to HIVE_WORKSPACE_ROOTS, or through a URL git accepts.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

GIT_TIMEOUT_S = 15
# Transports a clone may use; anything else (ext::, fd::, a remote helper) is refused before git sees it.
URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
SCP_LIKE = re.compile(r"^[\w.+-]+@[\w.-]+:(?!//)\S+$")
# Branches the hive makes live under hive/<session-slug>/; a chosen target must stay out of that folder.
RESERVED_BRANCH_FOLDER = "hive"
# Variables that would point git at another repository than the one asked about.
GIT_LOCATION_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")


class RepositoryProblem(Exception):
    """A value git does not accept, with the reason in an operator's words."""


@dataclass(frozen=True)
class RepositoryInfo:
    """A repository as validated: its canonical form, where it is, and what it holds."""

    location: str  # a resolved absolute path, or the URL as given
    is_url: bool
    bare: bool
    has_commits: bool
    branches: frozenset[str]


def _git_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in GIT_LOCATION_VARIABLES}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="echo", SSH_ASKPASS="echo", LC_ALL="C")
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _git(args: list[str], *, cwd: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**_git_env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RepositoryProblem(f"git did not answer within {GIT_TIMEOUT_S} s") from exc
    except FileNotFoundError as exc:
        raise RepositoryProblem("git is not installed on the server") from exc


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].removeprefix("fatal: ") if lines else "git refused it"


def is_url(value: str) -> bool:
    return value.startswith(URL_SCHEMES) or bool(SCP_LIKE.match(value))


def repository_inspect(value: str) -> RepositoryInfo:
    """The repository `value` names, or RepositoryProblem saying why git does not accept it."""
    if value.startswith("-"):
        raise RepositoryProblem("must be a path or a URL, not an option")
    if "::" in value.split("/", 1)[0]:
        raise RepositoryProblem("remote helpers (<transport>::<address>) are not accepted; give a path or a URL")
    if value.startswith("file://"):
        return _local_inspect(value.removeprefix("file://"))
    if is_url(value):
        return _remote_inspect(value)
    if "://" in value:
        schemes = ", ".join(scheme.removesuffix("://") for scheme in URL_SCHEMES)
        raise RepositoryProblem(f"unsupported URL scheme; use one of {schemes}")
    return _local_inspect(value)


def _local_inspect(value: str) -> RepositoryInfo:
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise RepositoryProblem("must be an absolute path or a URL")
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(root)) for root in settings.HIVE["WORKSPACE_ROOTS"]]
    if not any(real == root or root in real.parents for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise RepositoryProblem(f"must be inside a workspace root (HIVE_WORKSPACE_ROOTS: {allowed}) or a URL")
    if not real.is_dir():
        raise RepositoryProblem(f"{real} is not a directory")
    # Git must not find a repository around the directory: the directory itself is the repository, or nothing is.
    here_only = {"GIT_CEILING_DIRECTORIES": str(real.parent)}
    probe = _git(["rev-parse", "--is-bare-repository", "--absolute-git-dir"], cwd=real, env=here_only)
    if probe.returncode != 0:
        raise RepositoryProblem(f"{real} is not a git repository ({_first_line(probe.stderr)})")
    bare_text, git_dir = probe.stdout.split("\n")[:2]
    bare = bare_text == "true"
    top = None if bare else _git(["rev-parse", "--show-toplevel"], cwd=real, env=here_only)
    if (bare and Path(os.path.realpath(git_dir)) != real) or (
        top is not None and (top.returncode != 0 or Path(os.path.realpath(top.stdout.strip())) != real)
    ):
        raise RepositoryProblem(f"{real} is not the top directory of a git repository")
    heads = _git(["for-each-ref", "--format=%(refname:short)", "refs/heads/"], cwd=real)
    branches = frozenset(heads.stdout.split()) if heads.returncode == 0 else frozenset()
    has_commits = _git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd=real).returncode == 0
    return RepositoryInfo(location=str(real), is_url=False, bare=bare, has_commits=has_commits, branches=branches)


def _remote_inspect(url: str) -> RepositoryInfo:
    with tempfile.TemporaryDirectory() as neutral:
        listing = _git(["ls-remote", "--symref", "--", url, "HEAD", "refs/heads/*"], cwd=neutral)
    if listing.returncode != 0:
        raise RepositoryProblem(f"git cannot read it ({_first_line(listing.stderr)})")
    branches, has_head = set(), False
    for line in listing.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 2 or line.startswith("ref:"):
            continue
        if fields[1] == "HEAD":
            has_head = True
        elif fields[1].startswith("refs/heads/"):
            branches.add(fields[1].removeprefix("refs/heads/"))
    return RepositoryInfo(location=url, is_url=True, bare=True, has_commits=has_head, branches=frozenset(branches))


def branch_name_problem(name: str) -> str | None:
    """Why `name` cannot be a target branch, or None: git's own rule, then the hive's folder."""
    if name.startswith("-") or name.startswith("@"):
        return "is not a valid branch name"
    with tempfile.TemporaryDirectory() as neutral:
        check = _git(["check-ref-format", "--branch", name], cwd=neutral)
    if check.returncode != 0 or check.stdout.strip() != name:
        return "is not a valid branch name (git check-ref-format --branch)"
    if name == RESERVED_BRANCH_FOLDER or name.startswith(RESERVED_BRANCH_FOLDER + "/"):
        return (
            f"{RESERVED_BRANCH_FOLDER}/ holds the branches the hive makes; leave target_branch empty for "
            f"{RESERVED_BRANCH_FOLDER}/<session>/main or choose a name outside it"
        )
    return None


def branch_checked_out_in(repository: RepositoryInfo, branch: str) -> str | None:
    """The working tree of `repository` that has `branch` checked out, or None (always None for a URL)."""
    if repository.is_url:
        return None
    listing = _git(["worktree", "list", "--porcelain"], cwd=repository.location)
    if listing.returncode != 0:
        raise RepositoryProblem(f"git cannot list its working trees ({_first_line(listing.stderr)})")
    worktree = ""
    for line in listing.stdout.splitlines():
        if line.startswith("worktree "):
            worktree = line.removeprefix("worktree ")
        elif line == f"branch refs/heads/{branch}":
            return worktree
    return None
