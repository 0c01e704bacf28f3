from coordination.engine import Engine
from coordination.models import CoordinationEvent, Workflow
from coordination.services import WorkSpec, work_submit


def run_until_quiet(engine: Engine, *, ticks: int = 200) -> None:
    for _ in range(ticks):
        report = engine.tick()
        engine.drain(timeout=5)
        if not report.busy and not engine.in_flight and not engine.tick().busy:
            return


def test_feature_delivery_completes_with_scripted_crew(crew):
    workflow = work_submit(session=crew, work=WorkSpec(title="Add coupons", estimate_hours=10))
    engine = Engine(concurrency=2)
    run_until_quiet(engine)
    engine.shutdown(grace=1)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.COMPLETED
    steps = list(workflow.tasks.order_by("id").values_list("step", flat=True))
    assert steps == ["spec", "architecture", "implement", "review", "test", "ci"]
    types = list(CoordinationEvent.objects.filter(workflow=workflow).values_list("type", flat=True))
    assert types[0] == "work_submitted" and types[-1] == "collaboration_completed"
