"""No side effect twice in the repository: the check for the demo crew's shared git repository.

The demo's helper scripts commit at most once per task attempt and name the attempt in git
trailers (`Hive-Task`, `Hive-Attempt`; coordination/demo/_support.py). A side effect is
duplicated when one task's work landed in more than one commit: the same attempt committing
twice, or a second attempt committing what an earlier one (say, one whose daemon was
killed) already committed. Commits nobody can trace to an attempt are counted too.

This reads the repository as it works today (all agents in one working copy). When every
attempt works in its own worktree and only the current attempt is merged, this check is
replaced by one over the merge records; callers only use `repository_side_effects`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

FIELD = "\x1f"
RECORD = "\x1e"
LOG_FORMAT = FIELD.join(
    [
        "%H",
        "%P",
        "%(trailers:key=Hive-Task,valueonly,separator=%x2c)",
        "%(trailers:key=Hive-Attempt,valueonly,separator=%x2c)",
        "%s",
    ]
)


def _log(repo: Path) -> list[list[str]]:
    done = subprocess.run(
        ["git", "log", "--all", f"--format={LOG_FORMAT}{RECORD}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git log in {repo} failed: {done.stderr.strip()}")
    return [record.strip("\n").split(FIELD) for record in done.stdout.split(RECORD) if record.strip()]


def repository_side_effects(repo: Path) -> dict[str, Any]:
    """Commits per task attempt in `repo`; `duplicated` lists every task whose work landed twice."""
    if not (Path(repo) / ".git").exists():
        return {"checked": False, "reason": f"{repo} is not a git repository", "duplicated": [], "untraced": []}
    by_task: dict[int, list[dict[str, Any]]] = {}
    untraced: list[dict[str, str]] = []
    commits = 0
    for sha, parents, task, attempt, subject in _log(Path(repo)):
        commits += 1
        if not parents:
            continue  # the repository's first commit, made before the crew started
        if not task.strip().isdigit():
            untraced.append({"commit": sha[:12], "subject": subject[:120]})
            continue
        number = int(attempt) if attempt.strip().isdigit() else 0
        by_task.setdefault(int(task), []).append({"commit": sha[:12], "attempt": number, "subject": subject[:120]})
    duplicated = [
        {"task": task, "commits": [c["commit"] for c in found], "attempts": sorted({c["attempt"] for c in found})}
        for task, found in sorted(by_task.items())
        if len(found) > 1
    ]
    return {
        "checked": True,
        "commits": commits,
        "tasks_with_commits": len(by_task),
        "duplicated": duplicated,
        "untraced": untraced[:50],
        "untraced_count": len(untraced),
        "definition": "a task whose work landed in more than one commit (Hive-Task trailer)",
    }
