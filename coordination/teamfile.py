"""Team configuration files: what `spawn_team` and `run_coordinator` read.

{"name": "Checkout team", "goal": "…", "workspace": "/srv/repo",
 "members": [{"role": "developer", "runtime": "command", "runtime_config": {"argv": […]}}],
 "backlog": [{"title": "Add coupons", "pattern": "feature_delivery", "estimate_hours": 12}]}
"""

from __future__ import annotations

import json
from pathlib import Path

from .exceptions import DomainError
from .models import Session
from .services import MemberSpec, WorkSpec, team_spawn

MEMBER_KEYS = {"role", "name", "runtime", "runtime_config", "capabilities", "concurrency"}
WORK_KEYS = {"title", "description", "pattern", "priority", "estimate_hours", "files"}


def load_team_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DomainError(f"no such file: {path}", field="config") from exc
    except json.JSONDecodeError as exc:
        raise DomainError(f"{path} is not valid JSON: {exc}", field="config") from exc
    if not isinstance(data, dict):
        raise DomainError(f"{path} must hold a JSON object", field="config")
    return data


def _specs(items, keys: set[str], cls, field: str) -> list:
    if items is None:
        return []
    if not isinstance(items, list):
        raise DomainError("must be a list", field=field)
    specs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DomainError("must be an object", field=f"{field}[{i}]")
        unknown = set(item) - keys
        if unknown:
            raise DomainError(f"unknown keys: {', '.join(sorted(unknown))}", field=f"{field}[{i}]")
        specs.append(cls(**item))
    return specs


def team_spawn_from_config(config: dict, *, user=None) -> Session:
    members = _specs(config.get("members"), MEMBER_KEYS, MemberSpec, "members") or None
    backlog = _specs(config.get("backlog"), WORK_KEYS, WorkSpec, "backlog")
    return team_spawn(
        name=str(config.get("name", "")),
        goal=str(config.get("goal", "")),
        workspace=str(config.get("workspace", "")),
        members=members,
        backlog=backlog,
        user=user,
    )


def team_ensure(config: dict) -> tuple[Session, bool]:
    """The active session of this team, spawning it if none is active (daemon start-up)."""
    existing = Session.objects.filter(name=config.get("name", ""), status=Session.Status.ACTIVE).first()
    if existing is not None:
        return existing, False
    return team_spawn_from_config(config), True
