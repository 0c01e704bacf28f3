"""Named windows, the expressions the aggregates share, and rounding of figures.

A window is a name ("1h", "24h", "7d", "all") turned into (start, now); every
aggregate filters its rows by one of its time columns falling in it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Aggregate, DecimalField, F, FloatField, Func, Min, Q
from django.utils import timezone

from coordination.exceptions import DomainError
from coordination.models import Session, Task

WINDOWS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "all": None,
}
# Rows read into Python for a percentile where the database has no percentile_cont.
PERCENTILE_SAMPLE = 20_000
# Annualising less than this much recorded work would extrapolate noise.
MIN_ANNUALISE_SPAN_HOURS = Decimal("1")
TASK_WORKED = (Task.Status.COMPLETED, Task.Status.FAILED)
ZERO = Decimal("0")
CENT = Decimal("0.01")
DEC = DecimalField(max_digits=20, decimal_places=6)

# --- expressions -------------------------------------------------------------------


class Epoch(Func):
    """Seconds since the epoch of a datetime column, as a float, on PostgreSQL and SQLite."""

    output_field = FloatField()

    def as_postgresql(self, compiler, conn, **extra):
        return self.as_sql(compiler, conn, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", **extra)

    def as_sqlite(self, compiler, conn, **extra):
        return self.as_sql(compiler, conn, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)", **extra)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate ``percentile_cont(p) WITHIN GROUP (ORDER BY x)``."""

    function = "percentile_cont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, percentile: float, **extra):
        super().__init__(expression, percentile=float(percentile), **extra)


def seconds_between(start: str, end: str) -> Func:
    return Epoch(F(end)) - Epoch(F(start))


# --- windows -----------------------------------------------------------------------


def window_bounds(window: str, *, now: datetime | None = None) -> tuple[datetime | None, datetime]:
    """(start, now) of a named window; start is None for "all". Raises DomainError(field="window")."""
    if window not in WINDOWS:
        raise DomainError(f"unknown window {window!r}; choose one of {', '.join(WINDOWS)}", field="window")
    now = now or timezone.now()
    span = WINDOWS[window]
    return (now - span if span else None), now


def _span_seconds(start: datetime | None, now: datetime) -> float:
    """Length of the window; for "all", since the first session was created (0 when there is none)."""
    if start is None:
        first = Session.objects.aggregate(first=Min("created_at"))["first"]
        if first is None:
            return 0.0
        start = first
    return max((now - start).total_seconds(), 0.0)


def _in_window(field: str, start: datetime | None) -> Q:
    return Q(**{f"{field}__gte": start}) if start is not None else Q(**{f"{field}__isnull": False})


# --- figures ---------------------------------------------------------------------------


def _share(part, whole) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def _money(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


def _hours(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT)
