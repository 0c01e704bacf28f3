"""What the coordinator daemon changes is recorded under the daemon's name; what a person did, under theirs."""

from __future__ import annotations

from collections import Counter

import pytest

from coordination.actors import acting
from coordination.engine import Engine
from coordination.models import CoordinationEvent, Workflow
from coordination.services import WorkSpec, work_submit
from tests.conftest import run_until_quiet

pytestmark = pytest.mark.django_db
E = CoordinationEvent.Type


def test_daemon_events_carry_the_daemon_name(crew, operator):
    with acting(user=operator):
        workflow = work_submit(session=crew, work=WorkSpec(title="Add coupons"))
    engine = Engine(concurrency=2, housekeeping_interval=0, name="hive-daemon-7")
    try:
        run_until_quiet(engine)
    finally:
        engine.shutdown(grace=0)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED

    by_actor = Counter(CoordinationEvent.objects.filter(workflow=workflow).values_list("actor", flat=True))
    assert set(by_actor) == {"operator", "hive-daemon-7"}
    assert CoordinationEvent.objects.get(workflow=workflow, type=E.WORK_SUBMITTED).actor == "operator"
    daemon_types = set(
        CoordinationEvent.objects.filter(workflow=workflow, actor="hive-daemon-7").values_list("type", flat=True)
    )
    assert {E.TASK_ASSIGNED, E.TASK_COMPLETED, E.COLLABORATION_COMPLETED} <= daemon_types
    assert CoordinationEvent.objects.get(type=E.COORDINATOR_STARTED).actor == "hive-daemon-7"
    assert CoordinationEvent.objects.get(type=E.COORDINATOR_STOPPED).actor == "hive-daemon-7"
