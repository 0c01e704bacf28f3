"""Row locks, always in one order: task → decision → agent → workflow → session, each by id.

Every service that locks rows and then waits on another lock takes them through
these helpers, in that order, so two transactions can never wait on each other
in a cycle (a deadlock, which PostgreSQL ends by failing one request with a 500).
Read the row's status after its lock is held, never before: a status checked on
an unlocked copy can change before the write it guards.

A lock taken with SKIP LOCKED never waits, so it may come in any order (the
dispatcher's claims). Taking a waiting lock of an earlier kind after a later one
inside locks.atomic() raises LockOrderError: a bug to fix in the caller.
The dispatcher's PostgreSQL reads (dispatch/sql.py) follow the same order and
note it with `taken`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from django.db import connection, transaction

from agents.models import Agent

from ..models import Decision, Session, Task, Workflow

ORDER = ("task", "decision", "agent", "workflow", "session")
_RANK = {kind: rank for rank, kind in enumerate(ORDER)}


class LockOrderError(RuntimeError):
    """A waiting lock was requested out of the project's lock order."""


_state = threading.local()


@contextmanager
def atomic():
    """transaction.atomic() in which the lock order is checked (a nested block joins the outer one)."""
    if getattr(_state, "rank", None) is not None:
        with transaction.atomic():
            yield
        return
    _state.rank = -1
    try:
        with transaction.atomic():
            yield
    finally:
        _state.rank = None


def taken(kind: str) -> None:
    """Note a waiting lock of `kind`; inside locks.atomic(), out of order raises LockOrderError."""
    current = getattr(_state, "rank", None)
    if current is None:
        return
    rank = _RANK[kind]
    if rank < current:
        raise LockOrderError(f"{kind} locked after {ORDER[current]}; the order is {' → '.join(ORDER)}")
    _state.rank = rank


def tasks(ids, *, related: tuple[str, ...] = ("workflow",)) -> dict[int, Task]:
    """Lock these tasks (by id), with `related` rows read alongside (not locked)."""
    taken("task")
    query = Task.objects.select_for_update(of=("self",)).filter(pk__in=sorted(set(ids))).order_by("id")
    return {t.pk: t for t in query.select_related(*related)} if related else {t.pk: t for t in query}


def task(pk: int, *, related: tuple[str, ...] = ("workflow",)) -> Task:
    """Lock one task; Task.DoesNotExist if it is gone."""
    found = tasks([pk], related=related)
    if pk not in found:
        raise Task.DoesNotExist(f"task {pk} does not exist")
    return found[pk]


def decisions(ids) -> dict[int, Decision]:
    taken("decision")
    return {d.pk: d for d in Decision.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("id")}


def decision(pk: int) -> Decision:
    found = decisions([pk])
    if pk not in found:
        raise Decision.DoesNotExist(f"decision {pk} does not exist")
    return found[pk]


def agents(ids) -> dict[int, Agent]:
    taken("agent")
    return {a.pk: a for a in Agent.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("id")}


def agent(pk: int) -> Agent:
    found = agents([pk])
    if pk not in found:
        raise Agent.DoesNotExist(f"agent {pk} does not exist")
    return found[pk]


def workflows(ids) -> dict[int, Workflow]:
    taken("workflow")
    return {w.pk: w for w in Workflow.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("id")}


def workflow(pk: int) -> Workflow:
    found = workflows([pk])
    if pk not in found:
        raise Workflow.DoesNotExist(f"workflow {pk} does not exist")
    return found[pk]


def session(pk: int) -> Session:
    """Lock a session to change it."""
    taken("session")
    return Session.objects.select_for_update().get(pk=pk)


def session_status_shared(pk: int) -> str:
    """The session's status, held until commit against a status change (FOR SHARE on PostgreSQL).

    Writers that only add rows to a session (work submitted, an agent added) take
    this shared lock: they run side by side, and a pause or close waits for them
    (and they for it), so none of them adds work to a session that just closed.
    SQLite needs no row lock: its write transactions already run one at a time.
    """
    taken("session")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT status FROM "{Session._meta.db_table}" WHERE id = %s FOR SHARE', [pk])
            row = cursor.fetchone()
        if row is None:
            raise Session.DoesNotExist(f"session {pk} does not exist")
        return row[0]
    return Session.objects.values_list("status", flat=True).get(pk=pk)
