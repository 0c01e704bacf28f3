"""Real git repositories for tests: made with the git command line in a temporary directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@hive.local", "-c", "commit.gpgsign=false"]


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repository(path: Path, *, files: dict[str, str] | None = None, branch: str = "main") -> Path:
    """A working copy with `branch` checked out and one commit of `files` (default a README)."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", branch, cwd=path)
    for name, text in (files or {"README.md": "# sample\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "First commit", cwd=path)
    return path


def make_bare(path: Path, *, source: Path) -> Path:
    """A bare clone of `source`, as a shared remote."""
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(path)], check=True, capture_output=True)
    return path


def commit_file(repo: Path, name: str, text: str, *, message: str = "Change") -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)
