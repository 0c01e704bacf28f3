"""The demo product manager and architect: write the step's document from a template and commit it.

    python write_doc.py --step spec --work "Bulk discounts for large orders" --round 1

Scripted writing, labelled simulated wherever it shows: the document is filled in from the
work's title, description and files (HIVE_DESCRIPTION, argv), not thought up.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import _support

TEMPLATES = {
    "spec": (
        "spec",
        "# Spec: {title}\n\n"
        "## Problem\n\n{description}\n\n"
        "## Acceptance\n\n"
        "- The change touches only: {files}.\n"
        "- Tests in `tests/` cover every rule above and pass (`python -m pytest -q`).\n"
        "- The reviewer's lint (`python -m pyflakes`) reports nothing.\n\n"
        "_Written by {agent} (round {round}, simulated)._\n",
    ),
    "architecture": (
        "architecture",
        "# Architecture: {title}\n\n"
        "## Where it goes\n\n{files_list}\n\n"
        "## Decisions\n\n"
        "- Money stays in whole cents (`int`), like `shop.pricing`; rounding never favours the shop.\n"
        "- Pure functions without I/O, so the tests need no fixtures.\n\n"
        "_Written by {agent} (round {round}, simulated)._\n",
    ),
    "resolve_conflict": (
        "decisions",
        "# Conflict resolved: {title}\n\n"
        "Both changes kept; the later one rebased onto the earlier. Files: {files}.\n\n"
        "_Written by {agent} (round {round}, simulated)._\n",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", required=True, choices=sorted(TEMPLATES))
    parser.add_argument("--work", required=True)
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--pace", type=float, default=1.0, help="Seconds of pretend writing first.")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    repo = _support.workspace()
    time.sleep(max(0.0, args.pace))
    folder, template = TEMPLATES[args.step]
    text = template.format(
        title=args.work,
        description=os.environ.get("HIVE_DESCRIPTION", "").strip() or "(no description given)",
        files=", ".join(f"`{f}`" for f in args.files) or "the files it needs",
        files_list="\n".join(f"- `{f}`" for f in args.files) or "- to be decided by the developer",
        agent=os.environ.get("HIVE_AGENT_NAME", "an agent"),
        round=args.round,
    )
    path = Path("docs") / folder / f"{_support.slugify(args.work)}.md"
    with _support.repo_lock(repo):
        (repo / path.parent).mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text, encoding="utf-8")
        sha = _support.commit(repo, [str(path)], f"{folder.capitalize()} for {args.work}")
    print(f"Wrote {path}" + (f" (commit {sha})" if sha else " (unchanged)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
