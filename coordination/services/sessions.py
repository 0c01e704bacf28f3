"""Sessions without a crew: open one (the admin's "add session"), rename it or change its goal."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..events import EventDraft, event_record
from ..exceptions import ConflictError, DomainError
from ..inputs import SessionInputSerializer, validate_input
from ..models import CoordinationEvent, Session
from . import locks
from .workspaces import workspace_prepare

E = CoordinationEvent.Type
CLOSED_SESSIONS = (Session.Status.COMPLETED, Session.Status.FAILED)


def session_create(
    *,
    name: str,
    goal: str = "",
    workspace: str = "",
    user=None,
    repository: str = "",
    target_branch: str = "",
    verify: list[list[str]] | None = None,
) -> Session:
    """An active session with no agents yet; agents join it with agent_create."""
    data = validate_input(
        SessionInputSerializer,
        {
            "name": name,
            "goal": goal,
            "workspace": workspace,
            "repository": repository,
            "target_branch": target_branch,
            "verify": verify or [],
        },
    )
    path = workspace_prepare(data["workspace"], name=data["name"])
    now = timezone.now()
    with transaction.atomic():
        session = Session.objects.create(
            name=data["name"],
            goal=data["goal"],
            workspace=str(path),
            created_by=user if user and user.is_authenticated else None,
            created_at=now,
            repository=data["repository"],
            target_branch=data["target_branch"],
            verify=data["verify"],
        )
        event_record(
            EventDraft(
                type=E.SESSION_UPDATED,
                message=f"Session “{session.name}” opened",
                session_id=session.pk,
                collaboration_data={
                    "created": True,
                    "workspace": str(path),
                    "repository": session.repository,
                    "by": getattr(user, "username", ""),
                },
            ),
            now=now,
        )
    return session


def session_update(*, session: Session, user=None, **changes) -> Session:
    """Rename a session, change its goal or its verify commands; a closed session keeps its record as it was.

    The repository and the target branch stay as the session was spawned: its branches live there.
    """
    unknown = set(changes) - {"name", "goal", "verify"}
    if unknown:
        raise DomainError("cannot be changed here", field=sorted(unknown)[0])
    current = {"name": session.name, "goal": session.goal}
    if "verify" in changes:  # checked against the session's repository, as at spawn
        current["repository"] = session.repository
    data = validate_input(SessionInputSerializer, {**current, **changes})
    changes = {key: data[key] for key in changes}
    now = timezone.now()
    with locks.atomic():
        session = locks.session(session.pk)
        if session.status in CLOSED_SESSIONS:
            raise ConflictError(f"session is {session.status}", field="session")
        changed = sorted(key for key, value in changes.items() if getattr(session, key) != value)
        if not changed:
            return session
        for key in changed:
            setattr(session, key, changes[key])
        session.save(update_fields=[*changed, "updated_at"])
        event_record(
            EventDraft(
                type=E.SESSION_UPDATED,
                message=f"Session “{session.name}” updated ({', '.join(changed)})",
                session_id=session.pk,
                collaboration_data={"fields": changed, "by": getattr(user, "username", "")},
            ),
            now=now,
        )
    return session
