"""Event retention: prune_events, its archive, the replay horizon, and the daemon's daily run."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from coordination.events import EventDraft, event_payload, events_record
from coordination.exceptions import ConflictError
from coordination.models import CoordinationEvent, EventPrune
from coordination.services import retention

E = CoordinationEvent.Type


def write_events(count: int, *, days_ago: float, label: str = "event", session=None) -> list[CoordinationEvent]:
    """Events as services write them, dated `days_ago`."""
    moment = timezone.now() - timedelta(days=days_ago)
    drafts = [
        EventDraft(
            type=E.SESSION_UPDATED,
            message=f"{label} {i}",
            session_id=session.pk if session else None,
            collaboration_data={"n": i, "label": label},
        )
        for i in range(count)
    ]
    with transaction.atomic():
        return events_record(drafts, now=moment)


def kept_ids() -> list[int]:
    return list(CoordinationEvent.objects.order_by("id").values_list("id", flat=True))


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_events", *args, stdout=out)
    return out.getvalue()


# --- the command ------------------------------------------------------------------------------


def test_old_events_go_oldest_first_and_the_rest_stay(db):
    old = write_events(5, days_ago=120)
    young = write_events(3, days_ago=10)
    output = prune("--older-than", "90d")
    assert kept_ids()[:-1] == [e.pk for e in young]
    assert "Pruned 5 events older than 90 days" in output and f"through id {old[-1].pk}" in output
    run = EventPrune.objects.get()
    assert (run.status, run.trigger, run.deleted, run.pruned_through_id) == ("completed", "command", 5, old[-1].pk)
    assert run.lease_expires_at is None and run.finished_at is not None
    # The prune itself is an event (the newest one), kept.
    pruned = CoordinationEvent.objects.get(type=E.EVENTS_PRUNED)
    assert pruned.collaboration_data["deleted"] == 5
    assert pruned.collaboration_data["pruned_through"] == old[-1].pk


def test_nothing_old_prunes_nothing_and_records_no_event(db):
    write_events(2, days_ago=1)
    assert "No events older than 90 days: nothing pruned." in prune("--older-than", "90d")
    assert EventPrune.objects.get().deleted == 0
    assert not CoordinationEvent.objects.filter(type=E.EVENTS_PRUNED).exists()


def test_the_archive_holds_every_removed_payload_and_reads_back(db, tmp_path):
    old = write_events(7, days_ago=200, label="archived")
    write_events(1, days_ago=1)
    expected = [json.loads(json.dumps(event_payload(event))) for event in old]
    archive = tmp_path / "events.jsonl.gz"
    output = prune("--older-than", "180d", "--archive", str(archive), "--batch-size", "3")
    assert f"archived to {archive}" in output
    assert list(retention.archive_read(archive)) == expected
    # Plain tools read it too: one gzip member per batch is still one gzip file.
    lines = subprocess.run(["zcat", str(archive)], check=True, capture_output=True, text=True).stdout.splitlines()
    assert [json.loads(line) for line in lines] == expected


def test_batches_are_reported_at_verbosity_2_and_silent_at_0(db):
    write_events(5, days_ago=100)
    output = prune("--older-than", "90d", "--batch-size", "2", "--verbosity", "2")
    assert output.count("  pruned ") == 3 and "Pruned 5 events" in output
    assert prune("--older-than", "90d", "--verbosity", "0") == ""
    assert EventPrune.objects.count() == 2


def test_dry_run_says_what_would_go_and_changes_nothing(db, tmp_path):
    old = write_events(4, days_ago=95)
    write_events(1, days_ago=2)
    before = kept_ids()
    archive = tmp_path / "never.jsonl.gz"
    output = prune("--older-than", "90d", "--dry-run", "--archive", str(archive), "--batch-size", "3")
    assert "Would prune 4 events older than 90 days" in output and f"ids {old[0].pk}–{old[-1].pk}" in output
    assert "Dry run: nothing was changed and no archive written." in output
    assert kept_ids() == before and not archive.exists() and not EventPrune.objects.exists()


@pytest.mark.parametrize(
    "value, message",
    [
        ("90", "not a duration"),
        ("90x", "not a duration"),
        ("-5d", "not a duration"),
        ("1.5d", "not a duration"),
        ("d", "not a duration"),
        ("0d", "at least 1 hour"),
        ("30m", "at least 1 hour"),
    ],
)
def test_bad_durations_are_clear_errors(db, value, message):
    write_events(1, days_ago=400)
    with pytest.raises(CommandError, match=rf"--older-than: .*{message}"):
        prune(f"--older-than={value}")
    assert CoordinationEvent.objects.count() == 1 and not EventPrune.objects.exists()


@pytest.mark.parametrize("value, days", [("2w", 14), ("36h", 1.5), ("90D", 90), ("120m", 2 / 24)])
def test_durations_in_each_unit(value, days):
    assert retention.parse_age(value) == timedelta(days=days)


def test_an_existing_archive_is_never_overwritten(db, tmp_path):
    write_events(2, days_ago=100)
    archive = tmp_path / "events.jsonl.gz"
    archive.write_bytes(b"precious")
    with pytest.raises(CommandError, match="already exists"):
        prune("--older-than", "90d", "--archive", str(archive))
    with pytest.raises(CommandError, match="does not exist"):
        prune("--older-than", "90d", "--archive", str(tmp_path / "missing" / "events.jsonl.gz"))
    assert archive.read_bytes() == b"precious"
    assert CoordinationEvent.objects.count() == 2 and not EventPrune.objects.exists()


def test_bad_batch_size_is_refused(db):
    with pytest.raises(CommandError, match="--batch-size"):
        prune("--older-than", "90d", "--batch-size", "0")


def test_only_a_prefix_of_ids_goes(db):
    """An old event written after a young one stays: every id above the horizon is kept."""
    first = write_events(2, days_ago=100)
    young = write_events(1, days_ago=1)
    late_but_old = write_events(1, days_ago=100)
    prune("--older-than", "90d")
    assert kept_ids()[:2] == [young[0].pk, late_but_old[0].pk]
    assert EventPrune.objects.get().pruned_through_id == first[-1].pk


# --- append-only --------------------------------------------------------------------------------


def test_events_stay_append_only_outside_retention(db):
    event = write_events(1, days_ago=1)[0]
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="prune_events"):
        CoordinationEvent.objects.filter(pk=event.pk).delete()
    assert CoordinationEvent.objects.filter(pk=event.pk).exists()


# --- one run at a time, and interrupted runs ---------------------------------------------------------


def test_a_second_prune_is_refused_while_the_first_holds_its_lease(db):
    write_events(3, days_ago=100)
    first = retention.prune_begin(older_than=timedelta(days=90), trigger="command", owner="host-a:1")
    with pytest.raises(ConflictError, match=f"another prune is running #{first.pk} by host-a:1"):
        retention.prune_begin(older_than=timedelta(days=90), trigger="daemon", owner="host-b:2")
    with pytest.raises(CommandError, match="another prune is running"):
        prune("--older-than", "90d")
    assert CoordinationEvent.objects.count() == 3


def test_a_run_whose_lease_ran_out_is_taken_over(db):
    write_events(3, days_ago=100)
    stale = retention.prune_begin(older_than=timedelta(days=90), trigger="daemon", owner="dead-host:1")
    EventPrune.objects.filter(pk=stale.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    prune("--older-than", "90d")
    stale.refresh_from_db()
    assert stale.status == "abandoned" and "lease ran out" in stale.error
    with pytest.raises(ConflictError, match="another run took it over"):
        retention.prune_step(run=stale)
    assert CoordinationEvent.objects.exclude(type=E.EVENTS_PRUNED).count() == 0


def test_an_interrupted_prune_keeps_what_it_did_and_the_next_one_finishes(db, tmp_path):
    old = write_events(5, days_ago=100)
    archive = tmp_path / "part.jsonl.gz"

    def interrupt(step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retention.events_prune(older_than=timedelta(days=90), archive=archive, batch=2, on_batch=interrupt)
    run = EventPrune.objects.get()
    assert (run.status, run.deleted, run.pruned_through_id) == ("failed", 2, old[1].pk)
    assert "KeyboardInterrupt" in run.error
    assert [p["id"] for p in retention.archive_read(archive)] == [old[0].pk, old[1].pk]
    retention.events_prune(older_than=timedelta(days=90))
    assert not CoordinationEvent.objects.filter(pk__in=[e.pk for e in old]).exists()


# --- replay cursors --------------------------------------------------------------------------------


@pytest.fixture
def pruned(db):
    """Five old events pruned, three young ones kept."""
    old = write_events(5, days_ago=100)
    young = write_events(3, days_ago=1)
    retention.events_prune(older_than=timedelta(days=90))
    return old, young


@pytest.fixture
def reader(viewer):
    client = Client()
    client.force_login(viewer)
    return client


def test_an_api_cursor_below_the_horizon_is_told_so(pruned, reader):
    old, young = pruned
    response = reader.get(f"/api/events?after={old[1].pk}")
    assert response.status_code == 410
    body = response.json()
    assert body["code"] == "cursor_expired"
    assert body["pruned_through"] == old[-1].pk and body["oldest_kept_id"] == young[0].pk
    assert "after" in body["errors"] and f"resume with after={old[-1].pk}" in body["detail"]


def test_an_api_cursor_at_the_horizon_or_zero_reads_what_is_kept(pruned, reader):
    old, young = pruned
    at_horizon = reader.get(f"/api/events?after={old[-1].pk}&limit=3").json()
    assert [e["id"] for e in at_horizon["results"]] == [e.pk for e in young]
    from_start = reader.get("/api/events?limit=3").json()
    assert [e["id"] for e in from_start["results"]] == [e.pk for e in young]
    filtered = reader.get(f"/api/events?after={old[0].pk}&type=team_spawned")
    assert filtered.status_code == 410  # filters do not hide that the cursor is gone


def test_a_page_that_follows_its_cursor_does_not_read_the_horizon(pruned, reader):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    old, young = pruned
    with CaptureQueriesContext(connection) as following:
        assert reader.get(f"/api/events?after={young[0].pk}").status_code == 200
    with CaptureQueriesContext(connection) as gapped:
        assert reader.get(f"/api/events?after={old[0].pk}").status_code == 410
    horizon = [q for q in following.captured_queries if "eventprune" in q["sql"]]
    assert not horizon and any("eventprune" in q["sql"] for q in gapped.captured_queries)


# --- the daemon's daily run -------------------------------------------------------------------------


@pytest.fixture
def daemon(db):
    """Build an in-process coordinator (housekeeping every tick) after the test wrote its old events."""
    from coordination.engine import Engine

    engines = []

    def start() -> Engine:
        engines.append(Engine(concurrency=1, housekeeping_interval=0))
        return engines[-1]

    yield start
    for engine in engines:
        engine.shutdown(grace=1)


@pytest.fixture
def retention_days(settings):
    def set_days(days: int, archive_dir: str = ""):
        settings.HIVE = {**settings.HIVE, "EVENT_RETENTION_DAYS": days, "EVENT_ARCHIVE_DIR": archive_dir}

    return set_days


def test_a_daemon_prunes_daily_in_batches_when_retention_is_set(daemon, retention_days, monkeypatch, tmp_path):
    monkeypatch.setattr(retention, "DAEMON_BATCH", 4)
    old = write_events(10, days_ago=40)
    retention_days(30, str(tmp_path))
    engine = daemon()
    reports = [engine.tick() for _ in range(3)]  # housekeeping every tick in this fixture
    assert all(r.duration_ms >= 0 for r in reports)
    run = EventPrune.objects.get()
    assert (run.trigger, run.status, run.deleted, run.pruned_through_id) == ("daemon", "completed", 10, old[-1].pk)
    assert run.owner.startswith("coordinator ")
    archived = list(retention.archive_read(run.archive))
    assert [p["id"] for p in archived] == [e.pk for e in old]
    assert run.archive.startswith(str(tmp_path))
    # Done for the day: a fresh check (this daemon's or another's) finds nothing due.
    engine.retention.next_check = 0
    engine.tick()
    assert retention.DailyPrune(owner="another").step() == 0
    assert EventPrune.objects.count() == 1


def test_a_daemon_leaves_events_alone_without_the_setting(daemon, retention_days):
    write_events(3, days_ago=4000)
    retention_days(0)
    daemon().tick()
    assert not EventPrune.objects.exists() and CoordinationEvent.objects.count() >= 3


def test_a_second_daemon_does_not_start_while_one_is_pruning(daemon, retention_days, monkeypatch):
    monkeypatch.setattr(retention, "DAEMON_BATCH", 2)
    write_events(6, days_ago=40)
    retention_days(30)
    engine = daemon()
    other = retention.DailyPrune(owner="coordinator other")
    engine.tick()  # the engine starts a run and removes one batch
    assert other.step() == 0 and other.run is None
    run = EventPrune.objects.get()
    assert run.status == "running" and run.deleted == 2


def test_a_failing_daily_run_is_logged_and_the_tick_goes_on(daemon, retention_days, tmp_path, caplog):
    write_events(2, days_ago=40)
    retention_days(30, str(tmp_path / "missing-dir"))
    report = daemon().tick()
    assert report is not None and not EventPrune.objects.exists()
    assert "Event retention cannot start" in caplog.text and "does not exist" in caplog.text


def test_the_settings_refuse_a_negative_retention(settings):
    result = subprocess.run(
        [sys.executable, "-c", "import hive_project.settings"],
        env={"HIVE_EVENT_RETENTION_DAYS": "-1", "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
    )
    assert result.returncode != 0 and "HIVE_EVENT_RETENTION_DAYS" in result.stderr


def test_archive_members_are_valid_gzip_even_when_empty(db, tmp_path):
    archive = tmp_path / "empty.jsonl.gz"
    prune("--older-than", "90d", "--archive", str(archive))
    assert gzip.decompress(archive.read_bytes()) == b""


def test_prune_runs_are_listed_read_only_in_the_admin(admin_client, pruned):
    from django.urls import reverse

    run = EventPrune.objects.get()
    listing = admin_client.get(reverse("admin:coordination_eventprune_changelist")).content.decode()
    assert f'<td class="field-deleted">{run.deleted}</td>' in listing and "Completed" in listing
    change = reverse("admin:coordination_eventprune_change", args=[run.pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"deleted": 0}).status_code == 403
    assert admin_client.get(reverse("admin:coordination_eventprune_delete", args=[run.pk])).status_code == 403


def test_the_default_batch_fits_one_statement_on_every_database(db):
    """5000 ids in one DELETE … IN (…): SQLite allows 32766 parameters, PostgreSQL many more."""
    old = write_events(retention.BATCH + 1, days_ago=100)
    run = retention.events_prune(older_than=timedelta(days=90))
    assert (run.deleted, run.pruned_through_id) == (retention.BATCH + 1, old[-1].pk)
