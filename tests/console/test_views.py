"""The server-rendered console: access, every page with a real crew, forms, operator-only writes."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from waffle.testutils import override_switch

from agents.models import Agent
from coordination.models import CoordinationEvent, Decision, Session, Task, Workflow
from coordination.services import WorkSpec, work_submit

PAGES = ["console:overview", "console:flow", "console:sessions", "console:decisions", "console:spawn", "console:submit"]


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def delivered(crew, drive):
    """The crew delivered one feature; its events, attempts and metrics exist."""
    workflow = work_submit(session=crew, work=WorkSpec(title="Add coupons", estimate_hours=10))
    drive()
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    return workflow


@pytest.fixture
def waiting_decision(crew, drive):
    """A deploy that waits for a human: the ci task is blocked on an open decision."""
    with override_switch("require_deploy_approval", active=True):
        workflow = work_submit(session=crew, work=WorkSpec(title="Ship checkout", estimate_hours=8))
        drive()
    decision = Decision.objects.get(workflow=workflow, status=Decision.Status.OPEN)
    assert decision.task.status == Task.Status.BLOCKED
    return decision


# --- access -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_pages_require_login(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_signs_in_and_lands_on_overview(client, operator):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "operator", "password": "operator-pass-123"})
    assert response.status_code == 302 and response["Location"] == reverse("console:overview")


def test_login_shows_error_on_bad_password(client, operator):
    response = client.post(reverse("login"), {"username": "operator", "password": "wrong"})
    assert response.status_code == 200
    assert b"alert-error" in response.content


# --- pages with a crew and events ---------------------------------------------------------------


def test_overview_renders_crew_figures_and_feed(operator_client, delivered):
    response = operator_client.get(reverse("console:overview"))
    assert response.status_code == 200
    html = response.content.decode()
    for agent in Agent.objects.filter(session=delivered.session):
        assert agent.name in html
    assert 'class="badge badge-sim"' in html  # scripted crew is labelled simulated
    last = CoordinationEvent.objects.order_by("-id").first()
    assert f'data-event-id="{last.pk}"' in html
    assert f'data-last-event-id="{last.pk}"' in html
    # figures come from the selectors: one workflow finished without a human
    assert "1 of 1 finished workflows without a human" in html
    assert "100%" in html
    # the business-value panel shows its formulas and assumptions
    assert "hours_saved × hourly_rate" in html
    assert "Hourly rate" in html
    charts = json.loads(response.context["charts"] and json.dumps(response.context["charts"]))
    assert sum(row["tasks_completed"] for row in charts["throughput"]) == 6


def test_overview_without_data_says_so(operator_client):
    html = operator_client.get(reverse("console:overview")).content.decode()
    assert "No crew yet" in html
    assert "No events yet" in html
    assert "no finished workflows yet" in html


def test_overview_with_unknown_window_falls_back(operator_client, delivered):
    response = operator_client.get(reverse("console:overview"), {"window": "forever"})
    assert response.status_code == 200 and response.context["window"] == "24h"


def test_flow_shows_handoffs_between_roles(operator_client, delivered):
    response = operator_client.get(reverse("console:flow"), {"session": delivered.session_id})
    assert response.status_code == 200
    html = response.content.decode()
    for source, target in [
        ("product_manager", "architect"),
        ("architect", "developer"),
        ("developer", "reviewer"),
        ("reviewer", "tester"),
        ("tester", "devops"),
    ]:
        assert f'data-edge="{source}->{target}" data-count="1"' in html
    assert response.context["graph"]["review"]["cycles"] == 1


def test_flow_unknown_session_is_404(operator_client, db):
    assert operator_client.get(reverse("console:flow"), {"session": "999999"}).status_code == 404


def test_session_page_has_lanes_log_and_replay(operator_client, delivered):
    url = reverse("console:session", args=[delivered.session_id])
    response = operator_client.get(url)
    assert response.status_code == 200
    timeline = response.context["timeline"]
    bars = {lane["agent"]["role"]: len(lane["bars"]) for lane in timeline["lanes"] if lane["bars"]}
    assert bars == {"product_manager": 1, "architect": 1, "developer": 1, "reviewer": 1, "tester": 1, "devops": 1}
    html = response.content.decode()
    assert "data-replay-slider" in html
    # replay at the first task assignment: one agent busy, the workflow on its first step
    first_assign = CoordinationEvent.objects.filter(session_id=delivered.session_id, type="task_assigned").first()
    state = operator_client.get(url, {"at": first_assign.pk}).context["replay"]
    busy = [a for a in state["agents"] if a["status"] == "busy"]
    assert [a["role"] for a in busy] == ["product_manager"]
    assert state["workflows"][0]["step"] == "spec" and state["workflows"][0]["status"] == "running"
    # replay at the end: everyone idle, the workflow completed
    end = operator_client.get(reverse("console:session_replay", args=[delivered.session_id]))
    assert end.status_code == 200
    assert end.context["replay"]["workflows"][0]["status"] == "completed"
    assert all(a["status"] == "idle" for a in end.context["replay"]["agents"])


def test_session_event_log_filters_by_type_and_agent(operator_client, delivered):
    url = reverse("console:session", args=[delivered.session_id])
    events = operator_client.get(url, {"type": "task_completed"}).context["events"]
    assert len(events) == 6 and {e.type for e in events} == {"task_completed"}
    reviewer = Agent.objects.get(session_id=delivered.session_id, role="reviewer")
    events = operator_client.get(url, {"agent": reviewer.pk}).context["events"]
    assert events and all(
        e.agent_id == reviewer.pk or any(p["id"] == reviewer.pk for p in e.participants) for e in events
    )


def test_agent_page_shows_record_and_actions(operator_client, delivered):
    agent = Agent.objects.get(session_id=delivered.session_id, role="architect")
    response = operator_client.get(reverse("console:agent", args=[agent.pk]))
    assert response.status_code == 200
    assert response.context["performance"]["completed"] == 1
    assert response.context["history"]["success_pattern"] == [
        {"step": "architecture", "ok": 1, "failed": 0, "rate": 1.0}
    ]
    html = response.content.decode()
    assert 'data-action="pause"' in html and 'data-action="restart"' in html


def test_viewer_sees_pages_without_write_buttons(viewer_client, delivered, waiting_decision):
    agent = Agent.objects.filter(session_id=delivered.session_id).first()
    html = viewer_client.get(reverse("console:agent", args=[agent.pk])).content.decode()
    assert 'data-action="pause"' not in html
    html = viewer_client.get(reverse("console:decisions")).content.decode()
    assert waiting_decision.question in html
    assert "data-decision-form" not in html and "Only operators can answer" in html
    assert "Spawn team" not in viewer_client.get(reverse("console:overview")).content.decode()


# --- writes ----------------------------------------------------------------------------------------


def test_viewer_posts_are_refused(viewer_client, crew, waiting_decision):
    agent = Agent.objects.filter(session=crew).first()
    urls = [
        (reverse("console:agent_action", args=[agent.pk, "pause"]), {}),
        (reverse("console:decision_answer", args=[waiting_decision.pk]), {"option": "approve"}),
        (reverse("console:spawn"), {"name": "x", "roles": ["developer"], "runtime": "scripted"}),
        (reverse("console:submit"), {"session": crew.pk, "title": "x", "pattern": "feature_delivery", "priority": 0}),
    ]
    for url, data in urls:
        assert viewer_client.post(url, data).status_code == 403, url
    waiting_decision.refresh_from_db()
    assert waiting_decision.status == Decision.Status.OPEN
    assert Agent.objects.get(pk=agent.pk).status != Agent.Status.PAUSED
    assert Session.objects.count() == 1


def test_operator_answer_moves_the_blocked_task_on(operator_client, waiting_decision, drive):
    inbox = operator_client.get(reverse("console:decisions"))
    assert waiting_decision.question in inbox.content.decode()
    response = operator_client.post(
        reverse("console:decision_answer", args=[waiting_decision.pk]), {"option": "approve", "comment": "ship it"}
    )
    assert response.status_code == 302
    waiting_decision.refresh_from_db()
    assert waiting_decision.status == Decision.Status.ANSWERED and waiting_decision.comment == "ship it"
    assert waiting_decision.task.status == Task.Status.READY
    drive()
    waiting_decision.workflow.refresh_from_db()
    assert waiting_decision.workflow.status == Workflow.Status.COMPLETED


def test_answer_as_json_reports_conflict_on_second_answer(operator_client, waiting_decision):
    url = reverse("console:decision_answer", args=[waiting_decision.pk])
    first = operator_client.post(url, {"option": "approve"}, HTTP_ACCEPT="application/json")
    assert first.status_code == 200 and first.json()["ok"] is True
    second = operator_client.post(url, {"option": "reject"}, HTTP_ACCEPT="application/json")
    assert second.status_code == 409 and "option" in second.json()["errors"]


def test_answer_with_unknown_option_is_refused(operator_client, waiting_decision):
    url = reverse("console:decision_answer", args=[waiting_decision.pk])
    response = operator_client.post(url, {"option": "maybe"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "option" in response.json()["errors"]
    waiting_decision.refresh_from_db()
    assert waiting_decision.status == Decision.Status.OPEN


def test_agent_pause_resume_restart(operator_client, crew):
    agent = Agent.objects.filter(session=crew).first()
    url = lambda action: reverse("console:agent_action", args=[agent.pk, action])  # noqa: E731
    assert operator_client.post(url("pause"), {"reason": "lunch"}).status_code == 302
    agent.refresh_from_db()
    assert agent.status == Agent.Status.PAUSED and agent.status_reason == "lunch"
    # pausing twice is a conflict, shown as a message, not a 500
    response = operator_client.post(url("pause"), follow=True)
    assert "already paused" in response.content.decode()
    operator_client.post(url("resume"))
    agent.refresh_from_db()
    assert agent.status == Agent.Status.IDLE
    operator_client.post(url("restart"))
    assert CoordinationEvent.objects.filter(agent=agent, type="agent_restarted").exists()
    assert operator_client.post(url("explode")).status_code == 404


def test_spawn_form_shows_field_errors_and_writes_nothing(operator_client, tmp_path):
    response = operator_client.post(
        reverse("console:spawn"), {"name": "", "workspace": "relative/path", "runtime": "scripted"}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) == {"name", "roles", "workspace"}
    assert form.errors["workspace"] == ["must be an absolute path"]
    assert Session.objects.count() == 0 and Agent.objects.count() == 0
    # a refusal from the service lands on its field too
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    response = operator_client.post(
        reverse("console:spawn"),
        {"name": "Crew", "workspace": str(blocker / "sub"), "roles": ["developer"], "runtime": "scripted"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors["workspace"][0].startswith("cannot create")
    assert Session.objects.count() == 0


def test_spawn_form_rejects_bad_runtime_config(operator_client, tmp_path):
    response = operator_client.post(
        reverse("console:spawn"),
        {
            "name": "Crew",
            "workspace": str(tmp_path),
            "roles": ["developer"],
            "runtime": "scripted",
            "runtime_config": '{"duration_s": -1}',
        },
    )
    assert response.status_code == 400
    assert "duration_s" in response.context["form"].errors["runtime_config"][0]
    assert Session.objects.count() == 0


def test_spawn_form_creates_a_team(operator_client, tmp_path):
    response = operator_client.post(
        reverse("console:spawn"),
        {
            "name": "Checkout crew",
            "goal": "ship",
            "workspace": str(tmp_path),
            "roles": ["developer", "reviewer"],
            "runtime": "scripted",
        },
    )
    session = Session.objects.get(name="Checkout crew")
    assert response.status_code == 302 and response["Location"] == reverse("console:session", args=[session.pk])
    assert sorted(session.agents.values_list("role", flat=True)) == ["developer", "reviewer"]


def test_submit_form_validates_then_submits(operator_client, crew):
    url = reverse("console:submit")
    assert operator_client.get(url, {"session": crew.pk}).context["form"].initial["session"] == crew.pk
    bad = operator_client.post(
        url, {"session": crew.pk, "title": "Coupons", "pattern": "feature_delivery", "priority": 500}
    )
    assert bad.status_code == 400 and "priority" in bad.context["form"].errors
    assert not Workflow.objects.exists()
    good = operator_client.post(
        url,
        {
            "session": crew.pk,
            "title": "Coupons",
            "pattern": "code_review_cycle",
            "priority": 5,
            "estimate_hours": "3.5",
            "files": "shop/coupons.py\n\nshop/cart.py\n",
        },
    )
    assert good.status_code == 302
    workflow = Workflow.objects.get()
    assert workflow.pattern == "code_review_cycle" and workflow.files == ["shop/coupons.py", "shop/cart.py"]
    assert str(workflow.human_estimate_hours) == "3.50"


def test_submit_to_a_closed_session_lands_on_the_session_field(operator_client, crew):
    from coordination.services import session_set_status

    session_set_status(session=crew, status="completed")
    response = operator_client.post(
        reverse("console:submit"), {"session": crew.pk, "title": "x", "pattern": "feature_delivery", "priority": 0}
    )
    assert response.status_code == 400 and "session" in response.context["form"].errors
    assert not Workflow.objects.exists()


# --- PWA --------------------------------------------------------------------------------------------


def test_service_worker_is_served_from_the_root(client, db):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    body = response.content.decode()
    assert "__SHELL__" not in body and "/offline/" in body and "/static/css/console.css" in body


def test_manifest_names_the_app_and_its_icons(client, db):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200 and response["Content-Type"] == "application/manifest+json"
    data = response.json()
    assert data["name"] and data["start_url"] == "/" and data["display"] == "standalone"
    assert {icon["sizes"] for icon in data["icons"]} >= {"192x192", "512x512"}


def test_offline_page_needs_no_login(client, db):
    response = client.get(reverse("console:offline"))
    assert response.status_code == 200 and b"data-offline-snapshot" in response.content


def test_spawn_form_refuses_workspaces_outside_the_roots_and_deep_json(operator_client, settings, tmp_path):
    settings.HIVE = {**settings.HIVE, "WORKSPACE_ROOTS": [tmp_path / "roots"]}
    data = {"name": "Escape", "workspace": "/etc/hive", "runtime": "scripted", "roles": ["developer"]}
    response = operator_client.post(reverse("console:spawn"), data)
    assert response.status_code == 400
    assert "HIVE_WORKSPACE_ROOTS" in response.context["form"].errors["workspace"][0]
    deep = {**data, "workspace": "", "runtime_config": "[" * 5000 + "]" * 5000}
    response = operator_client.post(reverse("console:spawn"), deep)
    assert response.status_code == 400
    assert "runtime_config" in response.context["form"].errors
    assert Session.objects.count() == 0
