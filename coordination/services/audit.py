"""One audit trail: what the Django admin logs (LogEntry) is mirrored as a coordination event.

The receiver (coordination.admin.audit) calls this on LogEntry's post_save, so the event
is written in the admin's own transaction: both rows are kept, or neither.
"""

from __future__ import annotations

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from ..actors import Actor
from ..events import EventDraft, event_record
from ..models import CoordinationEvent, Session

VERBS = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}
ACTIONS = {ADDITION: "addition", CHANGE: "change", DELETION: "deletion"}
# The event's links, read from the edited object when it has them.
LINKS = ("session_id", "workflow_id", "task_id", "agent_id")


def admin_entry_record(*, entry: LogEntry) -> CoordinationEvent:
    """The event for one admin log entry: who did what to which object, attributed to the entry's user."""
    actor = Actor.of(entry.user)
    model = entry.content_type.model_class() if entry.content_type_id else None
    what = str(model._meta.verbose_name) if model else "object"
    change = entry.get_change_message() if entry.action_flag == CHANGE else ""
    message = f"{actor.name or 'someone'} {VERBS.get(entry.action_flag, 'logged')} {what} “{entry.object_repr}”"
    if change:
        message += f": {change}"
    return event_record(
        EventDraft(
            type=CoordinationEvent.Type.ADMIN_ACTION,
            message=message,
            **_links(entry),
            collaboration_data={
                "admin_log": entry.pk,
                "action": ACTIONS.get(entry.action_flag, str(entry.action_flag)),
                "model": f"{entry.content_type.app_label}.{entry.content_type.model}" if entry.content_type_id else "",
                "object_id": entry.object_id or "",
                "object": entry.object_repr,
                "change": change,
            },
            actor=actor.name,
        ),
        now=entry.action_time or timezone.now(),
    )


def _links(entry: LogEntry) -> dict[str, int]:
    """The session, workflow, task and agent an edited coordination object belongs to (none for a deletion)."""
    if entry.action_flag == DELETION or not entry.content_type_id:
        return {}
    try:
        obj = entry.get_edited_object()
    except (ObjectDoesNotExist, ValueError, TypeError):
        return {}
    links = {name: getattr(obj, name) for name in LINKS if isinstance(getattr(obj, name, None), int)}
    if isinstance(obj, Session):
        links["session_id"] = obj.pk
    return links
