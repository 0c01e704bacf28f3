"""The demo developer: applies the scripted patch for a piece of work and round, and commits it.

    python apply_patch.py --work "Bulk discounts for large orders" --round 2

Patches live in patches/<name>/<round>/ (files named like the target plus ".txt", so the
project's linter does not read the deliberate mistakes); meta.json names the work by title and
gives each round's commit message. A round past the last one re-applies the last. Work with no
scripted patch gets a short work note committed instead, so every round still leaves a commit.
This is simulated development: the agent that runs it is labelled simulated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import _support


def find_patch(title: str) -> Path | None:
    for meta_path in sorted(_support.PATCHES.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if title == meta["title"] or title.startswith(meta["title"] + " "):
            return meta_path.parent
    return None


def apply(*, repo: Path, patch: Path, round_: int) -> tuple[list[str], str]:
    meta = json.loads((patch / "meta.json").read_text(encoding="utf-8"))
    rounds = sorted(int(key) for key in meta["rounds"])
    if not rounds:
        return [], ""
    chosen = max([r for r in rounds if r <= round_] or [rounds[0]])
    source = patch / str(chosen)
    written = []
    for file in sorted(source.rglob("*.txt")):
        target = file.relative_to(source).with_suffix("")
        (repo / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, repo / target)
        written.append(str(target))
    return written, meta["rounds"][str(chosen)]


def note(*, repo: Path, title: str, round_: int, step: str) -> tuple[list[str], str]:
    path = Path("notes") / f"{_support.slugify(title)}.md"
    (repo / path.parent).mkdir(exist_ok=True)
    with open(repo / path, "a", encoding="utf-8") as handle:
        handle.write(f"- {step} round {round_}: worked on “{title}” (no scripted patch; simulated)\n")
    return [str(path)], f"Work notes for {title} (round {round_})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="The workflow title.")
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--step", default="implement")
    parser.add_argument("--pace", type=float, default=1.0, help="Seconds of pretend typing first.")
    args = parser.parse_args()
    repo = _support.workspace()
    time.sleep(max(0.0, args.pace))
    patch = find_patch(args.work)
    with _support.repo_lock(repo):
        written, message = apply(repo=repo, patch=patch, round_=args.round) if patch else ([], "")
        if not written:
            written, message = note(repo=repo, title=args.work, round_=args.round, step=args.step)
        sha = _support.commit(repo, written, message)
    what = f"commit {sha}" if sha else "no change to commit"
    print(f"{message}: {', '.join(written)} ({what})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
