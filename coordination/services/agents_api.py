"""Writes the JSON API needs beyond the core services: add an agent to a team, move a session.

Same rules as the rest of coordination/services: validated input, one transaction,
the CoordinationEvent written with the change and published on commit.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent

from ..events import EventDraft, event_record, participants
from ..exceptions import ConflictError, DomainError
from ..inputs import MemberInputSerializer, validate_input
from ..models import CoordinationEvent, Session
from . import locks
from .work import session_set_status

E = CoordinationEvent.Type
CLOSED_SESSIONS = (Session.Status.COMPLETED, Session.Status.FAILED)


def agent_create(
    *,
    session: Session,
    role: str,
    name: str = "",
    runtime: str = Agent.Runtime.SCRIPTED,
    runtime_config: dict | None = None,
    capabilities: list[str] | None = None,
    concurrency: int = 1,
    user=None,
) -> Agent:
    """Add one agent to a session's team (validated as the API validates it); its name is unique in the session."""
    data = validate_input(
        MemberInputSerializer,
        {
            "role": role,
            "name": name,
            "runtime": runtime,
            "runtime_config": {} if runtime_config is None else runtime_config,
            "capabilities": [] if capabilities is None else capabilities,
            "concurrency": concurrency,
        },
    )
    role, name, runtime, config = data["role"], data["name"], data["runtime"], data["runtime_config"]
    now = timezone.now()
    with locks.atomic():
        session = locks.session(session.pk)
        if session.status in CLOSED_SESSIONS:
            raise ConflictError(f"session is {session.status}", field="session")
        if not name:
            taken = set(Agent.objects.filter(session=session, role=role).values_list("name", flat=True))
            prefix = role.replace("_", "-")
            number = 1
            while f"{prefix}-{number}" in taken:
                number += 1
            name = f"{prefix}-{number}"
        if Agent.objects.filter(session=session, name=name).exists():
            raise ConflictError(f"an agent named {name!r} already serves this session", field="name")
        try:
            with transaction.atomic():
                agent = Agent.objects.create(
                    name=name,
                    role=role,
                    session=session,
                    runtime=runtime,
                    runtime_config=config,
                    capabilities=data["capabilities"],
                    concurrency=data["concurrency"],
                    heartbeat_at=now,
                )
        except IntegrityError as exc:  # a concurrent create took the name
            raise ConflictError(f"an agent named {name!r} already serves this session", field="name") from exc
        event_record(
            EventDraft(
                type=E.AGENT_UPDATED,
                message=f"{agent.name} joined “{session.name}” as {agent.get_role_display().lower()}",
                session_id=session.pk,
                agent_id=agent.pk,
                participants=participants(agent),
                collaboration_data={"created": True, "runtime": runtime, "by": getattr(user, "username", "")},
                simulated=agent.is_simulated,
            ),
            now=now,
        )
    return agent


# Which status each session action moves to, and from which statuses it may.
SESSION_TRANSITIONS = {
    "pause": (Session.Status.PAUSED, (Session.Status.ACTIVE,)),
    "resume": (Session.Status.ACTIVE, (Session.Status.PAUSED,)),
    "complete": (Session.Status.COMPLETED, (Session.Status.ACTIVE, Session.Status.PAUSED)),
}


def session_transition(*, session: Session, action: str, user=None) -> Session:
    """Pause, resume or complete a session if its current status allows it."""
    if action not in SESSION_TRANSITIONS:
        raise DomainError(f"unknown action {action!r}; choose one of {', '.join(SESSION_TRANSITIONS)}", field="action")
    target, allowed = SESSION_TRANSITIONS[action]
    return session_set_status(session=session, status=target, user=user, only_from=allowed, action=action)
