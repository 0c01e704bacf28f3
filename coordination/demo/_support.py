"""What the demo crew's helper scripts share: the workspace, git under a lock, slugs.

The scripts run as programs (`python apply_patch.py …`) in the session workspace, started by
the command runtime, so this module imports nothing from Django.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATCHES = HERE / "patches"


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "work"


def workspace() -> Path:
    return Path(os.environ.get("HIVE_WORKSPACE") or os.getcwd()).resolve()


def git(*args: str, cwd: Path, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def repo_lock(repo: Path) -> Iterator[None]:
    """Agents share one repository; one git write at a time keeps the index consistent."""
    with open(repo / ".git" / "hive-demo.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def commit(repo: Path, paths: list[str], message: str) -> str:
    """Commit `paths` as the agent running this task; the short sha, or "" when nothing changed."""
    author = os.environ.get("HIVE_AGENT_NAME") or "demo-agent"
    git("add", "--", *paths, cwd=repo)
    if not git("status", "--porcelain", "--", *paths, cwd=repo):
        return ""
    git(
        "-c",
        f"user.name={author}",
        "-c",
        f"user.email={slugify(author)}@agent-hive.invalid",
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        message,
        *trailers(),
        "--",
        *paths,
        cwd=repo,
    )
    return git("rev-parse", "--short", "HEAD", cwd=repo)


def trailers() -> list[str]:
    """The task attempt behind a commit, as git trailers: each side effect traces back to one attempt."""
    task, attempt = os.environ.get("HIVE_TASK_ID"), os.environ.get("HIVE_ATTEMPT")
    if not task:
        return []
    return ["-m", f"Hive-Task: {task}\nHive-Attempt: {attempt or 0}"]


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(1)
