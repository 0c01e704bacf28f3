"""Team configuration files: what `spawn_team` and `run_coordinator` read.

{"name": "Checkout team", "goal": "…", "workspace": "/srv/work",
 "repository": "/srv/repo.git", "target_branch": "", "verify": [["python", "-m", "pytest", "-q"]],
 "members": [{"role": "developer", "runtime": "command", "runtime_config": {"argv": […]}}],
 "backlog": [{"title": "Add coupons", "pattern": "feature_delivery", "estimate_hours": 12}]}

A file is validated by the same serializer as `POST /api/coordination/spawn`, so
both give the same field-level messages; every problem is a DomainError naming its
field, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .exceptions import DomainError
from .inputs import SpawnInputSerializer, validate_input
from .jsonlimits import JSONNestingError, json_loads
from .models import Session
from .services import MemberSpec, WorkSpec, team_spawn

MEMBER_KEYS = {"role", "name", "runtime", "runtime_config", "capabilities", "concurrency"}
WORK_KEYS = {"title", "description", "pattern", "priority", "estimate_hours", "files", "expects_change"}
TEAM_KEYS = {"name", "goal", "workspace", "members", "backlog", "repository", "target_branch", "verify"}


def load_team_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DomainError(f"no such file: {path}", field="config") from exc
    except IsADirectoryError as exc:
        raise DomainError(f"{path} is a directory, not a team file", field="config") from exc
    except OSError as exc:
        raise DomainError(f"cannot read {path}: {exc.strerror or exc}", field="config") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DomainError(f"{path} is not UTF-8 text (invalid byte at offset {exc.start})", field="config") from exc
    try:
        data = json_loads(text)
    except JSONNestingError as exc:
        raise DomainError(str(exc), field=exc.field) from exc
    except ValueError as exc:
        raise DomainError(f"{path} is not valid JSON: {exc}", field="config") from exc
    if not isinstance(data, dict):
        raise DomainError(f"{path} must hold a JSON object", field="config")
    return data


def _unknown_keys(items, keys: set[str], field: str) -> dict[str, str]:
    """Keys the API would silently ignore are refused in a file: a typo must not pass unnoticed."""
    if not isinstance(items, list):
        return {}
    errors = {}
    for i, item in enumerate(items):
        unknown = set(item) - keys if isinstance(item, dict) else set()
        if unknown:
            errors[f"{field}[{i}]"] = f"unknown keys: {', '.join(sorted(map(str, unknown)))}"
    return errors


def team_config_validate(config: dict) -> dict:
    """The team file's content as the API's spawn serializer validates it, or DomainError naming every field."""
    unknown = sorted(map(str, set(config) - TEAM_KEYS))
    errors = {
        **({"config": f"unknown keys: {', '.join(unknown)}"} if unknown else {}),
        **_unknown_keys(config.get("members"), MEMBER_KEYS, "members"),
        **_unknown_keys(config.get("backlog"), WORK_KEYS, "backlog"),
    }
    if errors:
        raise DomainError("invalid team file", errors=errors)
    return validate_input(SpawnInputSerializer, config)


def team_spawn_from_config(config: dict, *, user=None) -> Session:
    data = team_config_validate(config)
    members = data.get("members")
    return team_spawn(
        name=data["name"],
        goal=data["goal"],
        workspace=data["workspace"],
        members=None if members is None else [MemberSpec(**member) for member in members],
        backlog=[WorkSpec(**work) for work in data["backlog"]],
        user=user,
        repository=data["repository"],
        target_branch=data["target_branch"],
        verify=data["verify"],
    )


def team_ensure(config: dict) -> tuple[Session, bool]:
    """The active session of this team, spawning it if none is active (daemon start-up)."""
    data = team_config_validate(config)
    existing = Session.objects.filter(name=data["name"], status=Session.Status.ACTIVE).first()
    if existing is not None:
        return existing, False
    return team_spawn_from_config(config), True


DEFAULT_TEAM = {"name": "Default team", "goal": ""}


def default_team_config() -> dict:
    """The team an empty spawn request gets: HIVE_TEAM_CONFIG's file, else one scripted agent per role."""
    path = settings.HIVE["TEAM_CONFIG"]
    return load_team_file(path) if path else dict(DEFAULT_TEAM)
