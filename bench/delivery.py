"""Time the coordinator itself adds per delivered workflow, on a repository of many files.

Per workflow: workflow branch, attempt worktree, commit of the agent's leftovers, claim checks
(changed files, empty-diff check), fenced advance of the workflow branch, merge onto the target
(merge-tree + commit-tree + compare-and-swap push) and worktree cleanup. The agent's own edit and
`verify` commands are excluded (no verify commands are configured: no merged-tree checkout).

    .venv/bin/python -m bench.delivery --files 5000 --workflows 40 --concurrent 20
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coordination.delivery.git import git_version
from coordination.delivery.merger import MergeStatus, merge_workflow
from coordination.delivery.workspace import (
    Clone,
    branch_push,
    changed_files,
    clone_open,
    commit_leftovers,
    same_tree,
    target_ensure,
    workflow_branch_ensure,
    worktree_add,
    worktree_remove,
)

TARGET = "hive/bench/main"
SEED_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "seed",
    "GIT_AUTHOR_EMAIL": "seed@example.com",
    "GIT_COMMITTER_NAME": "seed",
    "GIT_COMMITTER_EMAIL": "seed@example.com",
    "PATH": os.environ.get("PATH", os.defpath),
}


def make_repository(path: Path, *, files: int) -> None:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, env=SEED_ENV, check=True)
    for index in range(files):
        folder = path / f"pkg{index % 50:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"module_{index:05d}.py").write_text(f"VALUE_{index} = {index}\n" * 20)
    subprocess.run(["git", "add", "."], cwd=path, env=SEED_ENV, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "seed"], cwd=path, env=SEED_ENV, check=True)


def attempt(clone: Clone, *, number: int) -> tuple[float, str]:
    """One workflow's attempt up to its advanced branch; the coordinator's seconds (the agent's edit excluded)."""
    workflow = f"hive/bench/w{number}"
    started = time.perf_counter()
    head = workflow_branch_ensure(clone, branch=workflow, target=TARGET)
    worktree = worktree_add(clone, name=f"t{number}-a1", branch=f"hive/bench/t{number}-a1", start=head)
    coordinator = time.perf_counter() - started
    # the agent's work: not timed
    (worktree.path / f"pkg{number % 50:02d}" / f"feature_{number}.py").write_text(f"FEATURE = {number}\n")
    started = time.perf_counter()
    new_head = commit_leftovers(worktree, author=("bench-dev", "bench-dev@hive.local"), message=f"feature {number}")
    assert changed_files(cwd=worktree.path, base=head, head=new_head)
    assert not same_tree(cwd=worktree.path, base=head, head=new_head)
    assert branch_push(clone, branch=workflow, new=new_head, expected_old=head)
    worktree_remove(clone, worktree)
    return coordinator + time.perf_counter() - started, workflow


def merge(clone: Clone, workflow: str) -> float:
    """The merger's part: merge-tree, commit-tree, compare-and-swap of the target."""
    started = time.perf_counter()
    result = merge_workflow(
        clone, workflow_branch=workflow, target_branch=TARGET, verify_commands=[], message=f"Merge {workflow}"
    )
    assert result.status == MergeStatus.MERGED, result
    return time.perf_counter() - started


def deliver(clone: Clone, *, number: int) -> float:
    seconds, workflow = attempt(clone, number=number)
    return seconds + merge(clone, workflow)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(label: str, seconds: list[float]) -> None:
    ms = [value * 1000 for value in seconds]
    print(
        f"{label}: n={len(ms)} p50={statistics.median(ms):.0f} ms p95={percentile(ms, 0.95):.0f} ms "
        f"max={max(ms):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--workflows", type=int, default=40, help="delivered one after another")
    parser.add_argument("--concurrent", type=int, default=20, help="attempts running at once on one repository")
    args = parser.parse_args()
    print(f"git {'.'.join(map(str, git_version()))}, {os.cpu_count()} cores, load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="hive-bench-delivery-") as scratch:
        base = Path(scratch)
        make_repository(base / "repo", files=args.files)
        started = time.perf_counter()
        clone = clone_open(root=base / "root", repository=str(base / "repo"))
        target_ensure(clone, branch=TARGET)
        print(f"repository of {args.files} files; first clone + fetch {1000 * (time.perf_counter() - started):.0f} ms")
        started = time.perf_counter()
        deliver(clone, number=0)
        print(f"first delivery (a full checkout of the first worktree) {1000 * (time.perf_counter() - started):.0f} ms")
        cpu_before = _children_cpu()
        serial = [deliver(clone, number=number) for number in range(1, args.workflows + 1)]
        cpu_ms = (_children_cpu() - cpu_before) * 1000 / args.workflows
        report("one at a time, per delivered workflow", serial)
        # CPU time of the git processes: the steadier figure on a shared machine
        print(f"  git CPU time (user + system) per delivered workflow: {cpu_ms:.0f} ms")
        if not args.concurrent:
            return
        first = args.workflows + 1
        for label in ("cold: new worktrees beyond the pool", "warm: recycled worktrees"):
            # attempts run at once; the merger (one per repository) merges them one after another, as the daemon does
            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrent) as pool:
                attempts = list(pool.map(lambda n: attempt(clone, number=n), range(first, first + args.concurrent)))
            attempts_wall = time.perf_counter() - started
            merges = [merge(clone, workflow) for _, workflow in attempts]
            wall = time.perf_counter() - started
            first += args.concurrent
            per_attempt = [seconds for seconds, _ in attempts]
            report(f"{args.concurrent} attempts at once ({label}), coordinator time per attempt", per_attempt)
            report("  then merged one by one, per merge", merges)
            report(
                "  per delivered workflow (its attempt + its merge)",
                [a + m for a, m in zip(per_attempt, merges, strict=True)],
            )
            print(
                f"  attempts {attempts_wall * 1000:.0f} ms wall, "
                f"all {args.concurrent} delivered in {wall * 1000:.0f} ms wall"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
