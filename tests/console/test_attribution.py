"""Console forms record who made the change, and the session page filters its event log by actor."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from agents.models import Agent
from coordination.actors import acting
from coordination.models import CoordinationEvent
from coordination.services import agent_pause, agent_resume

pytestmark = pytest.mark.django_db


def _last_id() -> int:
    return CoordinationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_console_forms_record_the_signed_in_operator(client, operator, crew):
    client.force_login(operator)
    before = _last_id()
    response = client.post(
        reverse("console:submit"),
        {"session": crew.pk, "title": "Coupons", "pattern": "feature_delivery", "priority": 0, "files": ""},
    )
    assert response.status_code == 302
    agent = Agent.objects.filter(session=crew).first()
    pause = client.post(reverse("console:agent_action", args=[agent.pk, "pause"]), {"reason": "lunch"})
    assert pause.status_code == 302

    events = list(CoordinationEvent.objects.filter(id__gt=before))
    assert {e.type for e in events} >= {"work_submitted", "agent_paused"}
    assert {(e.actor, e.actor_token) for e in events} == {("operator", "")}


def test_session_page_filters_events_by_actor(client, operator, crew):
    other = User.objects.create_user("lead", is_staff=True)
    agent = Agent.objects.filter(session=crew).order_by("id").first()
    with acting(user=operator):
        agent_pause(agent=agent, reason="lunch")
    with acting(user=other):
        agent_resume(agent=agent)
    client.force_login(operator)
    url = reverse("console:session", args=[crew.pk])

    everyone = client.get(url).content.decode()
    only_lead = client.get(url, {"actor": "lead"})

    assert "paused: lunch" in everyone
    assert [e.type for e in only_lead.context["events"]] == ["agent_resumed"]
    assert only_lead.context["actors"] == ["lead", "operator"]
    page = only_lead.content.decode()
    assert 'data-feed-filter-actor="lead"' in page
    assert '<span class="ev-actor" title="who made this change">lead</span>' in page
