"""The operator admin: every page renders, actions go through the services, the audit trail stays put."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from waffle.models import Switch
from waffle.testutils import override_switch

from agents.models import Agent
from coordination.models import CoordinationEvent, CoordinatorInstance, Decision, Session, Task, TaskAttempt, Workflow
from coordination.services import MemberSpec, WorkSpec, team_spawn, work_submit
from metrics.models import ValueAssumptions

E = CoordinationEvent.Type


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def run_action(client, model, action: str, objects, **extra):
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], **extra}
    return client.post(changelist(model), data, follow=True)


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def delivered(crew, drive):
    """A feature delivered end to end by the scripted crew, then one waiting on a deploy approval."""
    work_submit(session=crew, work=WorkSpec(title="Coupons"))
    drive()
    with override_switch("require_deploy_approval", active=True):
        work_submit(session=crew, work=WorkSpec(title="Gift cards"))
        drive()
    return crew


def deadlocked_review(workspace) -> Decision:
    """A code review cycle whose reviewer never approves, ending in a review-deadlock decision."""
    members = [
        MemberSpec(role="developer", runtime="scripted", runtime_config={"duration_s": 0}),
        MemberSpec(
            role="reviewer",
            runtime="scripted",
            runtime_config={"duration_s": 0, "script": {"review": ["changes_requested"]}},
        ),
    ]
    session = team_spawn(
        name="Picky crew",
        workspace=str(workspace),
        members=members,
        backlog=[WorkSpec(title="Rename things", pattern="code_review_cycle")],
    )
    return session


def test_switches_exist_with_their_defaults(db):
    switches = dict(Switch.objects.values_list("name", "active"))
    assert switches["require_deploy_approval"] is False
    assert switches["coordination_paused"] is False
    assert switches["autospawn_team"] is True


def test_every_changelist_and_change_page_renders(admin_client, delivered):
    assert Decision.objects.filter(status=Decision.Status.OPEN, kind="deploy_approval").exists()
    models = [Agent, Session, Workflow, Task, TaskAttempt, CoordinationEvent, Decision, CoordinatorInstance]
    for model in models:
        listing = admin_client.get(changelist(model))
        assert listing.status_code == 200, model.__name__
        obj = model.objects.order_by("pk").first()
        assert obj is not None, model.__name__
        page = admin_client.get(change(obj))
        assert page.status_code == 200, model.__name__
    assert admin_client.get(changelist(ValueAssumptions)).status_code == 200
    assert admin_client.get(change(ValueAssumptions.current())).status_code == 200
    assert admin_client.get(reverse("admin:agents_agent_add")).status_code == 200
    assert admin_client.get(reverse("admin:waffle_switch_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:coordination_apitoken_add")).status_code == 200

    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "Coordination events" in index and "Value assumptions" in index


def test_changelists_show_the_columns_operators_need(admin_client, delivered):
    agents = admin_client.get(changelist(Agent)).content.decode()
    assert "developer-1" in agents and " s ago" in agents and "Scripted (simulated)" in agents
    tasks = admin_client.get(changelist(Task)).content.decode()
    assert "Blocked on a decision" in tasks and "Write the product spec for Coupons" in tasks
    sessions = admin_client.get(change(delivered)).content.decode()
    assert "Gift cards" in sessions and "product-manager-1" in sessions  # workflow and agent inlines
    workflow = Workflow.objects.get(title="Coupons")
    assert "Design the architecture for Coupons" in admin_client.get(change(workflow)).content.decode()
    events = admin_client.get(changelist(CoordinationEvent) + "?type=collaboration_completed").content.decode()
    assert "delivered" in events


def test_task_actions_cancel_and_retry_through_the_services(admin_client, crew):
    done_before = CoordinationEvent.objects.count()
    workflow = work_submit(session=crew, work=WorkSpec(title="Search"))
    ready = workflow.tasks.get()
    finished = Task.objects.create(
        workflow=workflow, session=crew, step="spec", role="product_manager", title="Old", status="completed"
    )

    response = run_action(admin_client, Task, "cancel_tasks", [ready, finished])

    assert response.status_code == 200
    ready.refresh_from_db()
    workflow.refresh_from_db()
    assert ready.status == Task.Status.CANCELLED
    assert workflow.status == Workflow.Status.CANCELLED
    assert CoordinationEvent.objects.filter(type=E.TASK_CANCELLED, task=ready).count() == 1
    messages = texts(response)
    assert any(m.startswith("Cancelled: #") for m in messages)
    assert any("Not cancelled" in m and "already completed" in m for m in messages)

    response = run_action(admin_client, Task, "retry_tasks", [ready])

    ready.refresh_from_db()
    assert ready.status == Task.Status.READY
    retried = CoordinationEvent.objects.get(type=E.TASK_RETRY_SCHEDULED, task=ready)
    assert retried.collaboration_data["by"] == "admin"
    assert CoordinationEvent.objects.count() > done_before


def test_agent_actions_pause_resume_restart(admin_client, crew):
    dev, tester = crew.agents.get(name="developer-1"), crew.agents.get(role="tester")
    run_action(admin_client, Agent, "pause_agents", [dev])
    response = run_action(admin_client, Agent, "pause_agents", [dev, tester])

    dev.refresh_from_db()
    tester.refresh_from_db()
    assert dev.status == tester.status == Agent.Status.PAUSED
    assert any("already paused" in m for m in texts(response))
    assert CoordinationEvent.objects.filter(type=E.AGENT_PAUSED).count() == 2

    run_action(admin_client, Agent, "resume_agents", [dev])
    run_action(admin_client, Agent, "restart_agents", [tester])

    dev.refresh_from_db()
    tester.refresh_from_db()
    assert dev.status == tester.status == Agent.Status.IDLE
    assert CoordinationEvent.objects.filter(type=E.AGENT_RESUMED, agent=dev).count() == 1
    assert CoordinationEvent.objects.filter(type=E.AGENT_RESTARTED, agent=tester).count() == 1


def test_answer_decisions_through_an_intermediate_page(admin_client, delivered, workspace, drive):
    picky = deadlocked_review(workspace / "picky")
    drive()
    deploy = Decision.objects.get(session=delivered, status=Decision.Status.OPEN)
    deadlock = Decision.objects.get(session=picky, status=Decision.Status.OPEN)
    assert deadlock.kind == "review_deadlock"

    page = run_action(admin_client, Decision, "answer_decisions", [deploy, deadlock])
    body = page.content.decode()
    assert page.status_code == 200
    assert 'value="approve"' in body and 'value="another_round"' in body and 'value="reject"' in body
    deploy.refresh_from_db()
    assert deploy.status == Decision.Status.OPEN  # showing the page changes nothing

    response = run_action(
        admin_client, Decision, "answer_decisions", [deploy, deadlock], apply="Answer", option="another_round"
    )

    deploy.refresh_from_db()
    deadlock.refresh_from_db()
    assert deploy.status == Decision.Status.OPEN
    assert deadlock.status == Decision.Status.ANSWERED and deadlock.answer == "another_round"
    assert deadlock.answered_by.username == "admin"
    messages = texts(response)
    assert any("Not answered" in m and "'another_round' is not one of approve, reject" in m for m in messages)
    assert Task.objects.filter(workflow__session=picky, step="implement", status="ready").exists()

    run_action(admin_client, Decision, "answer_decisions", [deploy], apply="Answer", option="approve")

    deploy.refresh_from_db()
    assert deploy.status == Decision.Status.ANSWERED
    assert deploy.task.status == Task.Status.READY
    assert CoordinationEvent.objects.filter(type=E.DECISION_ANSWERED).count() == 2


def test_events_cannot_be_added_changed_or_deleted(admin_client, crew):
    event = CoordinationEvent.objects.get(type=E.TEAM_SPAWNED)
    url = change(event)

    assert admin_client.get(url).status_code == 200  # a read-only view
    assert admin_client.post(url, {"message": "rewritten"}).status_code == 403
    delete_url = reverse("admin:coordination_coordinationevent_delete", args=[event.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:coordination_coordinationevent_add")).status_code == 403
    assert "delete_selected" not in admin_client.get(changelist(CoordinationEvent)).content.decode()

    event.refresh_from_db()
    assert event.message.startswith("Team")


def agent_form(agent: Agent, **overrides) -> dict:
    data = {
        "name": agent.name,
        "runtime": agent.runtime,
        "runtime_config": json.dumps(agent.runtime_config),
        "capabilities": json.dumps(agent.capabilities),
        "concurrency": agent.concurrency,
    }
    # What the browser posts for fields with callable defaults, so unchanged ones stay unchanged.
    data |= {"initial-runtime_config": data["runtime_config"], "initial-capabilities": data["capabilities"]}
    return {**data, **overrides}


def test_bad_runtime_config_is_a_field_error_and_writes_nothing(admin_client, crew):
    agent = crew.agents.get(name="developer-1")
    before = (agent.runtime, agent.runtime_config)
    events = CoordinationEvent.objects.count()

    response = admin_client.post(
        change(agent), agent_form(agent, runtime="command", runtime_config='{"argv": [], "shell": true}')
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "argv: must not be empty" in errors["runtime_config"]
    assert any(e.startswith("shell: unknown setting") for e in errors["runtime_config"])
    agent.refresh_from_db()
    assert (agent.runtime, agent.runtime_config) == before
    assert CoordinationEvent.objects.count() == events


def test_good_runtime_config_goes_through_agent_update(admin_client, crew):
    agent = crew.agents.get(name="developer-1")

    response = admin_client.post(
        change(agent), agent_form(agent, runtime="command", runtime_config='{"argv": ["make", "{files}"]}')
    )

    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.runtime == "command"
    assert agent.runtime_config["argv"] == ["make", "{files}"]
    assert agent.runtime_config["timeout"] == 600  # normalised by the runtime's validation
    updated = CoordinationEvent.objects.get(type=E.AGENT_UPDATED, agent=agent)
    assert updated.collaboration_data["fields"] == ["runtime", "runtime_config"]


def test_new_agent_is_validated_too(admin_client, crew):
    url = reverse("admin:agents_agent_add")
    data = {"name": "ghost", "role": "developer", "session": crew.pk, "runtime": "llm", "runtime_config": "{}"}
    data |= {"capabilities": "[]", "concurrency": 1}

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["runtime_config"]
    assert not Agent.objects.filter(name="ghost").exists()


def test_value_assumptions_are_a_singleton(admin_client, db):
    assumptions = ValueAssumptions.current()

    assert admin_client.get(reverse("admin:metrics_valueassumptions_add")).status_code == 403
    delete_url = reverse("admin:metrics_valueassumptions_delete", args=[assumptions.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        change(assumptions),
        {
            "currency": "EUR",
            "hourly_rate": "85.50",
            "working_hours_per_year": 1700,
            "team_size": 4,
            "human_review_minutes_per_decision": 10,
            "notes": "2025 budget",
        },
    )

    assert response.status_code == 302
    assumptions.refresh_from_db()
    assert (assumptions.currency, str(assumptions.hourly_rate), assumptions.team_size) == ("EUR", "85.50", 4)
    assert assumptions.updated_by.username == "admin"
    assert ValueAssumptions.objects.count() == 1


def test_switch_flip_in_admin_gates_deploys(admin_client, crew, drive):
    switch = Switch.objects.get(name="require_deploy_approval")
    run_action(admin_client, Switch, "enable_switches", [switch])
    switch.refresh_from_db()
    assert switch.active

    work_submit(session=crew, work=WorkSpec(title="Invoices"))
    drive()

    ci = Task.objects.get(workflow__title="Invoices", step="ci")
    assert ci.status == Task.Status.BLOCKED
    assert ci.decisions.get().kind == "deploy_approval"
