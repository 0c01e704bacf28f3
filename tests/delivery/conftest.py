"""Real git repositories in temporary folders: the user's repository, and the daemons' workspace roots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

USER_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Dana User",
    "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana User",
    "GIT_COMMITTER_EMAIL": "dana@example.com",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def run_git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=USER_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file of a working copy (its .git too, but for git's own index stat cache) by content."""
    files = {}
    for item in sorted(path.rglob("*")):
        if item.is_file() and not item.is_symlink():
            files[str(item.relative_to(path))] = item.read_bytes()
    return files


@pytest.fixture
def user_repo(tmp_path) -> Path:
    """The user's own repository: `main` checked out, with uncommitted and untracked changes."""
    repo = tmp_path / "user-repo"
    repo.mkdir()
    run_git("init", "-q", "-b", "main", cwd=repo)
    (repo / "shared.txt").write_text("one\ntwo\nthree\n")
    (repo / "README.md").write_text("# project\n")
    run_git("add", ".", cwd=repo)
    run_git("commit", "-q", "-m", "initial", cwd=repo)
    (repo / "README.md").write_text("# project\nwork in progress, not committed\n")
    (repo / "scratch.txt").write_text("untracked\n")
    return repo


@pytest.fixture
def bare_repo(tmp_path) -> Path:
    """A shared bare repository, as several machines would use."""
    seed = tmp_path / "seed"
    seed.mkdir()
    run_git("init", "-q", "-b", "main", cwd=seed)
    (seed / "shared.txt").write_text("one\ntwo\nthree\n")
    run_git("add", ".", cwd=seed)
    run_git("commit", "-q", "-m", "initial", cwd=seed)
    bare = tmp_path / "shared.git"
    run_git("clone", "-q", "--bare", str(seed), str(bare), cwd=tmp_path)
    return bare


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "daemon-root"
    path.mkdir()
    return path
