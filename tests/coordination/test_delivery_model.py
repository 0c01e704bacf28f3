"""Delivery fields of the model: the session's slug and default target branch, the merge lease, verification runs."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from coordination.models import MergeLock, Session, VerificationRun, Workflow, session_slug

pytestmark = pytest.mark.django_db


def test_slug_is_set_once_from_name_and_id(workspace):
    session = Session.objects.create(name="Payments: Q3 refactor!", workspace=str(workspace))
    assert session.slug == f"payments-q3-refactor-{session.pk}"
    session.refresh_from_db()
    assert session.slug == f"payments-q3-refactor-{session.pk}"

    session.name = "Renamed"
    session.save()
    session.refresh_from_db()
    assert session.slug == f"payments-q3-refactor-{session.pk}"


def test_slug_is_bounded_and_never_empty():
    assert session_slug(name="x" * 200, pk=123456) == "x" * 53 + "-123456"
    assert session_slug(name="¿¿??", pk=7) == "session-7"


def test_target_branch_defaults_under_the_session_namespace_only_with_a_repository(workspace):
    code = Session.objects.create(name="Code", workspace=str(workspace), repository=str(workspace))
    assert code.target_branch == f"hive/{code.slug}/main"
    code.refresh_from_db()
    assert code.target_branch == f"hive/{code.slug}/main"

    talk = Session.objects.create(name="Talk", workspace=str(workspace))
    talk.refresh_from_db()
    assert talk.target_branch == ""
    assert talk.effective_target_branch == f"hive/{talk.slug}/main"

    chosen = Session.objects.create(name="Chosen", workspace=str(workspace), repository="x", target_branch="release")
    chosen.refresh_from_db()
    assert chosen.target_branch == "release"


def test_one_merge_lock_per_repository():
    expires = timezone.now()
    MergeLock.objects.create(repository="/srv/repo.git", owner="a", expires_at=expires)
    with pytest.raises(IntegrityError), transaction.atomic():
        MergeLock.objects.create(repository="/srv/repo.git", owner="b", expires_at=expires)


def test_a_claim_run_names_its_attempt(workspace):
    session = Session.objects.create(name="S", workspace=str(workspace))
    workflow = Workflow.objects.create(session=session, pattern="feature", title="W")
    VerificationRun.objects.create(workflow=workflow, kind="merge", command=["true"], exit_code=0, passed=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        VerificationRun.objects.create(workflow=workflow, kind="claim", command=["true"], exit_code=0, passed=True)
