"""The demo crew: a real sample repository, a team that works on it, and a steady supply of work.

`demo_ensure` copies template/ into a fresh git repository under the workspace root and
spawns the team of team.json there (or reuses the active demo session). The tester really
runs pytest, the reviewer really lints with pyflakes and devops really builds and deploys a
zipapp; the developer applies scripted patches and the product manager and architect write
documents from templates, and those three are labelled simulated. `feed_next` submits the
next piece of the catalogue whenever the crew has nothing running; once the whole catalogue
has been submitted the crew idles, so the demo's figures stay those of a finite body of work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from ..exceptions import DomainError
from ..models import Session, Workflow
from ..services import WorkSpec, session_set_status, work_submit
from ..teamfile import WORK_KEYS, team_ensure

DEMO_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = DEMO_DIR / "template"
TEAM_FILE = DEMO_DIR / "team.json"
MORE_WORK_FILE = DEMO_DIR / "more_work.json"


def load_team() -> dict:
    return json.loads(TEAM_FILE.read_text(encoding="utf-8"))


def demo_name() -> str:
    return load_team()["name"]


def _fill(value, replacements: dict[str, str]):
    if isinstance(value, str):
        for marker, replacement in replacements.items():
            value = value.replace(marker, replacement)
        return value
    if isinstance(value, list):
        return [_fill(item, replacements) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, replacements) for key, item in value.items()}
    return value


def team_config(*, workspace: Path, python: str = sys.executable) -> dict:
    """team.json with the interpreter, the helper scripts' folder and the workspace filled in."""
    return _fill(load_team(), {"@PYTHON@": python, "@DEMO@": str(DEMO_DIR), "@WORKSPACE@": str(workspace)})


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DomainError(f"git {args[0]} failed: {done.stderr.strip()}", field="workspace")
    return done.stdout.strip()


def workspace_create(*, root: Path | None = None, now=None) -> Path:
    """A new git repository holding the sample project, with one initial commit."""
    root = Path(root or settings.HIVE["WORKSPACE_ROOT"])
    stamp = f"{(now or timezone.now()):%Y%m%d-%H%M%S}"
    path = root / f"demo-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"demo-{stamp}-{suffix}"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(TEMPLATE_DIR, path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    _git("init", "--quiet", "--initial-branch=main", cwd=path)
    _git("config", "user.name", "Agent Hive demo", cwd=path)
    _git("config", "user.email", "demo@agent-hive.invalid", cwd=path)
    _git("add", "--all", cwd=path)
    _git("commit", "--quiet", "--no-verify", "-m", "Start the shop sample project", cwd=path)
    return path


def demo_ensure(*, python: str = sys.executable, root: Path | None = None) -> tuple[Session, dict, bool]:
    """The active demo session and its filled-in team config, creating both when none is active."""
    name = demo_name()
    session = Session.objects.filter(name=name, status=Session.Status.ACTIVE).order_by("-created_at").first()
    if session is not None and (Path(session.workspace) / ".git").is_dir():
        return session, team_config(workspace=Path(session.workspace), python=python), False
    if session is not None:
        # Its repository is gone (var/ wiped): close it so a fresh one can start.
        session_set_status(session=session, status=Session.Status.FAILED)
    config = team_config(workspace=workspace_create(root=root), python=python)
    session, _ = team_ensure(config)
    return session, config, True


def catalogue() -> list[dict]:
    """Every piece of work the demo knows how to do: the first backlog, then the extra work."""
    extra = json.loads(MORE_WORK_FILE.read_text(encoding="utf-8"))
    return [{key: item[key] for key in item if key in WORK_KEYS} for item in [*load_team()["backlog"], *extra]]


def feed_next(*, session: Session, idle_pause: float = 5.0, now=None) -> Workflow | None:
    """Submit the next catalogue item when nothing runs in the session and it has been idle a while.

    Work waiting on a human decision does not count as running: the crew goes on with other work.
    Each item is submitted once; after the last one the feed submits nothing more.
    """
    now = now or timezone.now()
    session.refresh_from_db(fields=["status"])
    if session.status != Session.Status.ACTIVE:
        return None
    workflows = Workflow.objects.filter(session=session)
    if workflows.filter(status=Workflow.Status.RUNNING).exists():
        return None
    last_finished = workflows.aggregate(last=Max("completed_at"))["last"]
    if last_finished and now - last_finished < timedelta(seconds=idle_pause):
        return None
    items = catalogue()
    submitted = workflows.count()
    if submitted >= len(items):
        return None
    return work_submit(session=session, work=WorkSpec(**items[submitted]))
