"""Admin changes are attributed: actions record the operator, and the admin's own log is mirrored as events."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse

from agents.models import Agent
from coordination.models import CoordinationEvent, Session

pytestmark = pytest.mark.django_db
E = CoordinationEvent.Type


def _last_id() -> int:
    return CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_admin_actions_record_the_operator(admin_client, admin_user, crew):
    agents = list(Agent.objects.filter(session=crew).order_by("id")[:2])
    before = _last_id()
    url = reverse("admin:agents_agent_changelist")
    response = admin_client.post(url, {"action": "pause_agents", "_selected_action": [a.pk for a in agents]})
    assert response.status_code == 302
    events = list(CoordinationEvent.objects.filter(id__gt=before))
    assert [e.type for e in events] == [E.AGENT_PAUSED, E.AGENT_PAUSED]
    assert {e.actor for e in events} == {admin_user.username}


def test_admin_log_entries_are_mirrored_as_events(admin_client, admin_user, workspace):
    response = admin_client.post(
        reverse("admin:coordination_session_add"), {"name": "Admin team", "goal": "g", "workspace": str(workspace)}
    )
    assert response.status_code == 302
    session = Session.objects.get(name="Admin team")
    entry = LogEntry.objects.get(object_id=str(session.pk), content_type__model="session")

    mirrored = CoordinationEvent.objects.get(type=E.ADMIN_ACTION)
    assert mirrored.actor == admin_user.username
    assert mirrored.session_id == session.pk
    assert mirrored.collaboration_data["admin_log"] == entry.pk
    assert mirrored.collaboration_data["action"] == "addition"
    assert mirrored.message == f"{admin_user.username} added session “Admin team”"
    # The session's own event is attributed too: one trail, two rows for one change.
    assert set(session.events.values_list("actor", flat=True)) == {admin_user.username}


def test_user_changes_in_the_admin_are_mirrored_without_the_password(admin_client, admin_user):
    someone = User.objects.create_user("someone", password="old-pass-123")
    url = reverse("admin:auth_user_password_change", args=[someone.pk])
    response = admin_client.post(url, {"password1": "Very-Secret-9876", "password2": "Very-Secret-9876"})
    assert response.status_code == 302

    [mirrored] = CoordinationEvent.objects.filter(type=E.ADMIN_ACTION)
    assert mirrored.actor == admin_user.username
    assert mirrored.collaboration_data["model"] == "auth.user"
    assert "Very-Secret-9876" not in str(mirrored.message) + str(mirrored.collaboration_data)


def test_a_rolled_back_admin_change_leaves_no_event(admin_user, crew):
    with pytest.raises(RuntimeError), transaction.atomic():
        LogEntry.objects.log_actions(admin_user.pk, [crew], 2, "changed the goal")
        assert CoordinationEvent.objects.filter(type=E.ADMIN_ACTION).exists()
        raise RuntimeError("the admin's save failed")
    assert not CoordinationEvent.objects.filter(type=E.ADMIN_ACTION).exists()
