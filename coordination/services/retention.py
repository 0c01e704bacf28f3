"""Event retention: remove events older than an age, oldest ids first, optionally archived.

Events are append-only; this is the one sanctioned way they leave the table. A prune walks
the table in id order and stops at the first event young enough to keep, so what is
removed is always a prefix of ids: every id up to the run's `pruned_through_id` is gone,
every id above it is kept. That number is the replay horizon clients' cursors are checked
against (selectors.cursor_expired).

Each batch is one transaction: delete the batch's events and move the horizon past them
(with the archive, when asked for, written and synced to disk before). A run holds a
lease on its EventPrune row; a second run is refused while the first one's lease lives
(the named constraint one_running_event_prune), across commands and daemons alike.

The daemon prunes daily when HIVE_EVENT_RETENTION_DAYS is set (DailyPrune): a check every
few minutes, then one batch per housekeeping until the run is done, so the tick never
stalls on a large backlog.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..events import EventDraft, event_payload, event_record
from ..exceptions import ConflictError, DomainError
from ..models import CoordinationEvent, EventPrune

logger = logging.getLogger(__name__)

E = CoordinationEvent.Type
# Rows per transaction: the command's default, and the daemon's (one batch per housekeeping).
BATCH = 5000
DAEMON_BATCH = 2000
BATCH_MAX = 20000
# Nothing younger than this is pruned: a transaction still writing events never loses one.
MIN_AGE = timedelta(hours=1)
# A run renews its lease with every batch; a run whose lease ran out may be taken over.
LEASE = timedelta(minutes=5)
# How often a daemon looks whether the daily run is due, and how often it runs.
DAILY_CHECK_SECONDS = 300.0
DAILY_PERIOD = timedelta(days=1)

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": ("minutes", 60), "h": ("hours", 3600), "d": ("days", 86400), "w": ("weeks", 604800)}


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `2w` or `45m` as a timedelta of at least MIN_AGE; a DomainError on `older_than` otherwise."""
    match = _DURATION.match((text or "").strip().lower())
    if not match:
        raise DomainError(
            f"{text!r} is not a duration: write a whole number and a unit, e.g. 90d, 12h, 2w or 45m",
            field="older_than",
        )
    age = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)][1])
    if age < MIN_AGE:
        raise DomainError(
            f"must be at least {describe_age(MIN_AGE)}: younger events may still be written", field="older_than"
        )
    return age


def describe_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit in ("w", "d", "h", "m"):
        name, size = _UNITS[unit]
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {name if count != 1 else name[:-1]}"
    return f"{seconds} seconds"


# --- the plan (dry run) ----------------------------------------------------------------------


@dataclass(frozen=True)
class PrunePlan:
    cutoff: datetime
    count: int
    first_id: int | None
    last_id: int | None
    oldest_at: datetime | None
    newest_at: datetime | None


def _old_prefix(rows: list, cutoff: datetime, created_at: Callable) -> list:
    """The leading rows created before `cutoff`: retention removes a prefix of ids, never a hole."""
    for index, row in enumerate(rows):
        if created_at(row) >= cutoff:
            return rows[:index]
    return rows


def events_prune_plan(*, older_than: timedelta, now: datetime | None = None, batch: int = BATCH) -> PrunePlan:
    """What a prune would remove now, read the way the prune reads it; writes nothing."""
    cutoff = (now or timezone.now()) - older_than
    count, first, last, oldest_at, newest_at = 0, None, None, None, None
    after = 0
    while True:
        rows = list(
            CoordinationEvent.objects.filter(id__gt=after).order_by("id").values_list("id", "created_at")[:batch]
        )
        old = _old_prefix(rows, cutoff, lambda row: row[1])
        if old:
            first = first if first is not None else old[0][0]
            oldest_at = oldest_at or old[0][1]
            last, newest_at = old[-1]
            count += len(old)
            after = last
        if len(old) < len(rows) or len(rows) < batch:
            return PrunePlan(cutoff, count, first, last, oldest_at, newest_at)


# --- archive -----------------------------------------------------------------------------------


def _archive_reserve(path: Path) -> None:
    """Create the archive (an empty gzip member, so it is valid from the start); never overwrite one."""
    if not path.parent.is_dir():
        raise DomainError(f"directory {path.parent} does not exist", field="archive")
    try:
        with open(path, "xb") as archive:
            archive.write(gzip.compress(b""))
    except FileExistsError as exc:
        raise DomainError(f"{path} already exists; archives are never overwritten", field="archive") from exc
    except OSError as exc:
        raise DomainError(f"cannot create {path}: {exc.strerror}", field="archive") from exc


def _archive_append(path: Path, events: list[CoordinationEvent]) -> None:
    """Append one gzip member of JSON lines (the events' payloads) and sync it before the rows go."""
    lines = "".join(json.dumps(event_payload(event), cls=DjangoJSONEncoder) + "\n" for event in events)
    with open(path, "ab") as archive:
        archive.write(gzip.compress(lines.encode("utf-8")))
        archive.flush()
        os.fsync(archive.fileno())


def archive_read(path: str | Path) -> Iterator[dict]:
    """The event payloads of an archive, in id order (gzip JSON lines; `zcat FILE | jq` reads it too)."""
    with gzip.open(path, "rt", encoding="utf-8") as archive:
        for line in archive:
            if line.strip():
                yield json.loads(line)


# --- runs --------------------------------------------------------------------------------------


def default_owner(label: str = "") -> str:
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return f"{owner} {label}".strip()[:200]


def prune_begin(
    *,
    older_than: timedelta,
    trigger: str,
    owner: str,
    archive: str | Path | None = None,
    now: datetime | None = None,
) -> EventPrune:
    """Start a run (holding its lease); a ConflictError while another run's lease lives."""
    if older_than < MIN_AGE:
        raise DomainError(f"must be at least {describe_age(MIN_AGE)}", field="older_than")
    now = now or timezone.now()
    path = Path(archive).expanduser().resolve() if archive else None
    with transaction.atomic():
        EventPrune.objects.filter(status=EventPrune.Status.RUNNING, lease_expires_at__lt=now).update(
            status=EventPrune.Status.ABANDONED, finished_at=now, lease_expires_at=None, error="its lease ran out"
        )
        try:
            with transaction.atomic():
                run = EventPrune.objects.create(
                    trigger=trigger,
                    owner=owner[:200],
                    older_than=older_than,
                    cutoff=now - older_than,
                    archive=str(path or ""),
                    lease_expires_at=now + LEASE,
                    started_at=now,
                )
        except IntegrityError:
            other = EventPrune.objects.filter(status=EventPrune.Status.RUNNING).first()
            detail = f"#{other.pk} by {other.owner} since {other.started_at:%Y-%m-%d %H:%M:%S} UTC" if other else ""
            raise ConflictError(f"another prune is running {detail}".strip(), field="prune") from None
        if path is not None:
            _archive_reserve(path)  # inside the transaction: a refused archive leaves no run behind
    return run


@dataclass(frozen=True)
class PruneStep:
    deleted: int
    done: bool
    run: EventPrune


def prune_step(*, run: EventPrune, batch: int = BATCH, now: datetime | None = None) -> PruneStep:
    """Remove the next batch of old events (archived first when the run has an archive)."""
    rows = CoordinationEvent.objects.filter(id__gt=run.pruned_through_id).order_by("id")
    if not run.archive:
        rows = rows.only("id", "created_at")  # the payloads are read only to be archived
    rows = list(rows[:batch])
    old = _old_prefix(rows, run.cutoff, lambda event: event.created_at)
    done = len(old) < len(rows) or len(rows) < batch
    if old and run.archive:
        _archive_append(Path(run.archive), old)
    now = now or timezone.now()
    with transaction.atomic():
        current = EventPrune.objects.select_for_update().get(pk=run.pk)
        if current.status != EventPrune.Status.RUNNING:
            raise ConflictError(f"prune #{run.pk} is {current.status}: another run took it over", field="prune")
        deleted = CoordinationEvent.objects.prune(ids=[event.pk for event in old]) if old else 0
        if old:
            current.pruned_through_id = old[-1].pk
        current.deleted += deleted
        current.lease_expires_at = None if done else now + LEASE
        if done:
            current.status = EventPrune.Status.COMPLETED
            current.finished_at = now
            if current.deleted:
                _record_pruned(current, now=now)
        current.save()
    return PruneStep(deleted=deleted, done=done, run=current)


def _record_pruned(run: EventPrune, *, now: datetime) -> None:
    archived = f"; archived to {run.archive}" if run.archive else ""
    event_record(
        EventDraft(
            type=E.EVENTS_PRUNED,
            message=f"{run.deleted} events older than {describe_age(run.older_than)} pruned, "
            f"through event {run.pruned_through_id}{archived}",
            collaboration_data={
                "prune": run.pk,
                "trigger": run.trigger,
                "deleted": run.deleted,
                "pruned_through": run.pruned_through_id,
                "older_than_s": int(run.older_than.total_seconds()),
                "cutoff": run.cutoff.isoformat(),
                "archive": run.archive,
            },
        ),
        now=now,
    )


def prune_fail(*, run: EventPrune, error: str) -> None:
    """Close a run that cannot go on; what it already removed stays removed (and archived)."""
    EventPrune.objects.filter(pk=run.pk, status=EventPrune.Status.RUNNING).update(
        status=EventPrune.Status.FAILED, finished_at=timezone.now(), lease_expires_at=None, error=error[:2000]
    )


def events_prune(
    *,
    older_than: timedelta,
    archive: str | Path | None = None,
    batch: int = BATCH,
    trigger: str = EventPrune.Trigger.COMMAND,
    owner: str = "",
    on_batch: Callable[[PruneStep], None] | None = None,
) -> EventPrune:
    """Prune everything older than `older_than`, batch after batch, and return the finished run."""
    if not 1 <= batch <= BATCH_MAX:
        raise DomainError(f"must be between 1 and {BATCH_MAX}", field="batch_size")
    run = prune_begin(older_than=older_than, trigger=trigger, owner=owner or default_owner(), archive=archive)
    try:
        while True:
            step = prune_step(run=run, batch=batch)
            run = step.run
            if on_batch is not None:
                on_batch(step)
            if step.done:
                return run
    except BaseException as exc:  # interrupted or failed: close the run rather than wait out its lease
        prune_fail(run=run, error=f"{type(exc).__name__}: {exc}")
        raise


# --- the daemon's daily run ------------------------------------------------------------------------


def retention_days() -> int:
    return int(settings.HIVE.get("EVENT_RETENTION_DAYS") or 0)


def _daily_due(*, now: datetime) -> bool:
    """No daemon run finished (or failed) within the last day. One query (event_prune_last_run_idx)."""
    return not EventPrune.objects.filter(
        trigger=EventPrune.Trigger.DAEMON,
        status__in=[EventPrune.Status.COMPLETED, EventPrune.Status.FAILED],
        started_at__gt=now - DAILY_PERIOD,
    ).exists()


class DailyPrune:
    """A daemon's share of retention, called from its housekeeping.

    Off unless HIVE_EVENT_RETENTION_DAYS is set. Otherwise a look every DAILY_CHECK_SECONDS
    whether a daily run is due; the daemon that gets the lease removes one batch per call
    until the run is done. Failures are logged and never reach the tick.
    """

    def __init__(self, *, owner: str):
        self.owner = owner
        self.run: EventPrune | None = None
        self.next_check = 0.0

    def step(self) -> int:
        """Do this call's share; returns the events removed."""
        days = retention_days()
        if days <= 0:
            return 0
        try:
            if self.run is None:
                if time.monotonic() < self.next_check:
                    return 0
                self.next_check = time.monotonic() + DAILY_CHECK_SECONDS
                self.run = self._begin(days)
                if self.run is None:
                    return 0
            step = prune_step(run=self.run, batch=DAEMON_BATCH)
            self.run = None if step.done else step.run
            if step.done and step.run.deleted:
                logger.info("Event retention: %s", step.run)
            return step.deleted
        except Exception as exc:
            logger.exception("Event retention failed; the next daily run tries again")
            if self.run is not None:
                try:
                    prune_fail(run=self.run, error=f"{type(exc).__name__}: {exc}")
                except Exception:
                    logger.warning("Could not mark prune #%s failed; its lease will run out", self.run.pk)
                self.run = None
            return 0

    def _begin(self, days: int) -> EventPrune | None:
        now = timezone.now()
        if not _daily_due(now=now):
            return None
        archive_dir = settings.HIVE.get("EVENT_ARCHIVE_DIR")
        archive = Path(archive_dir) / f"events-{now:%Y%m%dT%H%M%SZ}.jsonl.gz" if archive_dir else None
        try:
            return prune_begin(
                older_than=timedelta(days=days),
                trigger=EventPrune.Trigger.DAEMON,
                owner=self.owner,
                archive=archive,
                now=now,
            )
        except ConflictError:
            return None  # another daemon (or a prune_events command) holds the lease
        except DomainError as exc:
            logger.error("Event retention cannot start: %s", exc.message)
            return None
