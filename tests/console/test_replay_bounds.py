"""The replay slider of a long session stops at its most recent events, not at every event ever written."""

from __future__ import annotations

import pytest

from coordination import console_selectors
from coordination.models import CoordinationEvent
from coordination.services import WorkSpec, work_submit
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db


def test_bounds_hold_the_latest_stops_only(crew, engine, monkeypatch):
    work_submit(session=crew, work=WorkSpec(title="Work", pattern="code_review_cycle"))
    run_until_quiet(engine)
    ids = list(CoordinationEvent.objects.filter(session=crew).order_by("id").values_list("id", flat=True))
    assert len(ids) > 3
    whole = console_selectors.session_event_bounds(session=crew)
    assert whole["ids"] == ids and not whole["truncated"] and whole["first"] == ids[0]
    monkeypatch.setattr(console_selectors, "REPLAY_STOP_LIMIT", 3)
    bounds = console_selectors.session_event_bounds(session=crew)
    assert bounds["ids"] == ids[-3:] and bounds["truncated"]
    assert (bounds["first"], bounds["last"], bounds["count"]) == (ids[-3], ids[-1], 3)


def test_the_session_page_says_the_slider_is_cut(crew, engine, operator, client, monkeypatch):
    work_submit(session=crew, work=WorkSpec(title="Work", pattern="code_review_cycle"))
    run_until_quiet(engine)
    monkeypatch.setattr(console_selectors, "REPLAY_STOP_LIMIT", 3)
    client.force_login(operator)
    response = client.get(f"/sessions/{crew.pk}/")
    assert response.status_code == 200
    assert b"the last 3 events" in response.content
