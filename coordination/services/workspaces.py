"""Where a session may work: paths from requests stay inside the configured workspace roots.

An operator's request names a directory the server will create and run programs in,
as the server's user. Only directories inside settings.HIVE["WORKSPACE_ROOTS"]
(HIVE_WORKSPACE_ROOTS, default the workspace root) are accepted; symlinks and ".."
are resolved before the check, so neither leads outside.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from ..exceptions import DomainError


def workspace_roots() -> list[Path]:
    return [Path(os.path.realpath(root)) for root in settings.HIVE["WORKSPACE_ROOTS"]]


def path_within_roots(value: str, *, field: str) -> Path:
    """`value` as a real absolute path inside a workspace root, or DomainError naming `field`."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise DomainError("must be an absolute path", field=field)
    real = Path(os.path.realpath(path))
    roots = workspace_roots()
    if not any(real == root or root in real.parents for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise DomainError(f"must be inside a workspace root (HIVE_WORKSPACE_ROOTS: {allowed})", field=field)
    return real


def workspace_prepare(workspace: str, *, name: str) -> Path:
    """The session's directory, created if needed: the one asked for, or a fresh one under the workspace root."""
    if workspace:
        path = path_within_roots(workspace, field="workspace")
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "session"
        path = Path(settings.HIVE["WORKSPACE_ROOT"]) / f"{slug}-{timezone.now():%Y%m%d%H%M%S}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DomainError(f"cannot create {path}: {exc.strerror}", field="workspace") from exc
    if not path.is_dir():
        raise DomainError(f"{path} is not a directory", field="workspace")
    return path
