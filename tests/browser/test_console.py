"""The console in a real browser against a real ASGI server: live events, decisions, forms, phone, PWA."""

from __future__ import annotations

import re

import pytest
from waffle.testutils import override_switch

from coordination.engine import Engine
from coordination.models import CoordinationEvent, Decision, Session, Task, Workflow
from coordination.services import WorkSpec, work_submit
from tests.conftest import run_until_quiet

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def engine(transactional_db):
    instance = Engine(concurrency=2, housekeeping_interval=0)
    yield instance
    instance.shutdown(grace=1)


def wait_live(page) -> None:
    page.wait_for_selector('[data-conn][data-state="live"]')


def test_sign_in_then_a_coordinator_event_appears_without_reload(new_page, operator, crew, engine):
    page = new_page()
    page.goto("/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-pass-123")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Overview')")
    wait_live(page)
    page.evaluate("window.__sameDocument = true")

    work_submit(session=crew, work=WorkSpec(title="Add coupons", estimate_hours=4))
    engine.tick()  # the coordinator assigns the first step
    assigned = CoordinationEvent.objects.filter(type="task_assigned").latest("id")
    item = page.wait_for_selector(f'[data-feed] [data-event-id="{assigned.pk}"]')
    assert "Add coupons" in item.inner_text()
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    # the crew card of the agent now shows the task (live region re-rendered by the server)
    page.wait_for_selector(f'[data-agent-id="{assigned.agent_id}"] .task-title:has-text("Add coupons")')


def test_answering_a_decision_resumes_the_blocked_task(new_page, operator, crew, engine):
    with override_switch("require_deploy_approval", active=True):
        workflow = work_submit(session=crew, work=WorkSpec(title="Ship checkout", estimate_hours=8))
        run_until_quiet(engine)
    decision = Decision.objects.get(workflow=workflow, status=Decision.Status.OPEN)
    task = decision.task
    assert task.status == Task.Status.BLOCKED

    page = new_page(operator)
    page.goto("/decisions/")
    wait_live(page)
    card = f'[data-decision-id="{decision.pk}"]'
    page.wait_for_selector(card)
    page.click(f'{card} button[data-option="approve"]')
    # the answer travels back over the socket and the inbox re-renders without the decision
    page.wait_for_selector(card, state="detached")
    page.wait_for_selector(f'[data-answered-decision="{decision.pk}"]')
    task.refresh_from_db()
    assert task.status == Task.Status.READY

    run_until_quiet(engine)
    done = CoordinationEvent.objects.get(workflow=workflow, type="collaboration_completed")
    page.wait_for_selector(f'[data-feed] [data-event-id="{done.pk}"]')
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED


def test_spawn_a_team_and_submit_work_with_field_errors(new_page, operator, tmp_path):
    page = new_page(operator)
    page.goto("/teams/new/")
    page.fill("#id_name", "Checkout crew")
    page.fill("#id_goal", "A faster checkout")
    page.fill("#id_workspace", "relative/path")
    page.click("button:has-text('Spawn team')")
    error = page.wait_for_selector('[data-field="workspace"] .field-errors')
    assert "absolute path" in error.inner_text()
    assert Session.objects.count() == 0
    assert page.input_value("#id_name") == "Checkout crew"  # what was typed is kept

    page.fill("#id_workspace", str(tmp_path / "checkout"))
    page.uncheck("input[name=roles][value=devops]")
    page.click("button:has-text('Spawn team')")
    page.wait_for_selector("h1:has-text('Checkout crew')")
    session = Session.objects.get(name="Checkout crew")
    assert sorted(session.agents.values_list("role", flat=True)) == [
        "architect",
        "developer",
        "product_manager",
        "reviewer",
        "tester",
    ]

    page.click(".page-head .actions a:has-text('Submit work')")
    page.wait_for_selector("h1:has-text('Submit work')")
    assert page.input_value("#id_session") == str(session.pk)
    page.fill("#id_title", "One-click checkout")
    page.fill("#id_priority", "500")
    page.click("button:has-text('Submit work')")
    error = page.wait_for_selector('[data-field="priority"] .field-errors')
    assert "100" in error.inner_text()
    assert not Workflow.objects.exists()

    page.fill("#id_priority", "10")
    page.fill("#id_files", "shop/checkout.py")
    page.click("button:has-text('Submit work')")
    page.wait_for_selector("h1:has-text('Checkout crew')")
    page.wait_for_selector("[data-workflow] >> text=One-click checkout")
    workflow = Workflow.objects.get()
    assert workflow.priority == 10 and workflow.files == ["shop/checkout.py"]


@pytest.mark.parametrize("path", ["/", "/decisions/", "/flow/", "session"])
def test_phone_viewport_has_no_horizontal_overflow(new_page, operator, crew, engine, path):
    work_submit(session=crew, work=WorkSpec(title="Add a very long feature title that should wrap nicely"))
    run_until_quiet(engine)
    page = new_page(operator, viewport={"width": 375, "height": 812})
    page.goto(f"/sessions/{crew.pk}/" if path == "session" else path)
    page.wait_for_selector("#main h1")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{path}: content {widths[0]}px wide on a {widths[1]}px screen"


def test_service_worker_registers_and_offline_shows_last_state(new_page, operator, crew):
    page = new_page(operator)
    page.goto("/")
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", scope)
    page.wait_for_function("document.body.dataset.swState === 'registered'")
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.reload()  # this visit goes through the worker, which keeps a copy
    page.wait_for_selector("h1:has-text('Overview')")
    assert page.evaluate("localStorage.getItem('hive:overview-snapshot') !== null")

    page.context.set_offline(True)
    page.reload()
    banner = page.wait_for_selector("[data-offline-banner]:not([hidden])")
    assert "last updated" in banner.inner_text()
    page.wait_for_selector("h1:has-text('Overview')")
    page.wait_for_selector('[data-conn][data-state="offline"]')
    page.context.set_offline(False)
