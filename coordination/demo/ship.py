"""The demo devops: builds the shop into a runnable zipapp, smoke-tests it and deploys it locally.

    python ship.py --step build    # dist/shop-<version>-<sha>.pyz, then run it once
    python ship.py --step deploy   # copy the newest build to releases/, point releases/CURRENT at it
    python ship.py --step ci       # both

The last line printed is a JSON verdict with the artifacts, read by the runtime (verdict json_line).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import zipapp
from pathlib import Path

import _support


def version(repo: Path) -> str:
    text = (repo / "shop" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    return match.group(1) if match else "0"


def smoke(archive: Path) -> str:
    done = subprocess.run([sys.executable, str(archive), "--version"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        _support.fail(f"smoke test of {archive.name} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def build(repo: Path) -> Path:
    sha = _support.git("rev-parse", "--short", "HEAD", cwd=repo)
    (repo / "dist").mkdir(exist_ok=True)
    target = repo / "dist" / f"shop-{version(repo)}-{sha}.pyz"
    zipapp.create_archive(
        repo,
        target=target,
        interpreter="/usr/bin/env python3",
        main="shop.cli:main",
        filter=lambda path: path.parts[0] == "shop" and "__pycache__" not in path.parts,
    )
    print(f"Built {target.relative_to(repo)} ({target.stat().st_size} bytes); smoke test: {smoke(target)}")
    return target


def deploy(repo: Path) -> Path:
    builds = sorted((repo / "dist").glob("shop-*.pyz"), key=lambda p: p.stat().st_mtime)
    if not builds:
        _support.fail("nothing to deploy: no build in dist/")
    releases = repo / "releases"
    releases.mkdir(exist_ok=True)
    target = releases / builds[-1].name
    shutil.copyfile(builds[-1], target)
    (releases / "CURRENT").write_text(target.name + "\n", encoding="utf-8")
    print(f"Deployed {target.relative_to(repo)}; smoke test: {smoke(target)}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", required=True, help="build, deploy, or ci (both).")
    parser.add_argument("--work", default="")
    args = parser.parse_args()
    repo = _support.workspace()
    artifacts = []
    if args.step in ("build", "ci"):
        artifacts.append(build(repo))
    if args.step in ("deploy", "ci"):
        artifacts.append(deploy(repo))
    if not artifacts:
        _support.fail(f"unknown step {args.step!r}; expected build, deploy or ci")
    names = [str(path.relative_to(repo)) for path in artifacts]
    verdict = {"outcome": "success", "summary": f"{args.step}: {', '.join(names)}", "artifacts": names}
    print(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
