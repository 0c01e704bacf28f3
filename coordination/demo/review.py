"""The demo reviewer: lints the work's Python files with pyflakes (all of the package when none are named).

Exit 0 approves; any finding exits 1, which the reviewer's runtime reports as changes requested.
"""

from __future__ import annotations

import subprocess
import sys

import _support


def main() -> int:
    repo = _support.workspace()
    named = [arg for arg in sys.argv[1:] if arg.endswith(".py")]
    missing = [path for path in named if not (repo / path).is_file()]
    if missing:
        print(f"Cannot review: {', '.join(missing)} not in the repository yet", file=sys.stderr)
        return 1
    targets = named or ["shop", "tests"]
    done = subprocess.run([sys.executable, "-m", "pyflakes", *targets], cwd=repo, check=False)
    if done.returncode == 0:
        print(f"Lint clean: {len(targets)} path(s) checked with pyflakes")
    else:
        print(f"Changes requested: pyflakes found problems in {', '.join(targets)}", file=sys.stderr)
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
