"""Which period and which sessions a report covers: one validation for the page, the API and the command."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from coordination.models import Session

PRESETS = {"7d": 7, "30d": 30}
PERIOD_CHOICES = [("7d", "Last 7 days"), ("30d", "Last 30 days"), ("custom", "Custom dates")]


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, and how to name it."""

    start: datetime
    end: datetime
    key: str
    session: Session | None = None

    @property
    def label(self) -> str:
        last_day = (self.end - timedelta(microseconds=1)).date()
        return f"{self.start.date():%d %b %Y} – {last_day:%d %b %Y}"

    @property
    def days(self) -> int:
        return max(1, round((self.end - self.start).total_seconds() / 86400))

    def query(self) -> dict[str, str]:
        """The query string that asks for this report again (links, exports, the PDF)."""
        params = {"period": self.key}
        if self.key == "custom":
            params |= {"start": self.start.date().isoformat(), "end": (self.end - timedelta(days=1)).date().isoformat()}
        if self.session is not None:
            params["session"] = str(self.session.pk)
        return params


def max_days() -> int:
    return int(settings.HIVE["REPORT_MAX_DAYS"])


class ReportQuery(serializers.Serializer):
    """`period` 7d (default), 30d or custom with `start` and `end` dates (inclusive); `session` optional."""

    period = serializers.ChoiceField(choices=PERIOD_CHOICES, default="7d")
    start = serializers.DateField(required=False, help_text="First day (YYYY-MM-DD), with period=custom.")
    end = serializers.DateField(required=False, help_text="Last day, included (YYYY-MM-DD), with period=custom.")
    session = serializers.PrimaryKeyRelatedField(
        queryset=Session.objects.all(), required=False, allow_null=True, help_text="One session; all when absent."
    )

    def validate(self, data):
        if data["period"] != "custom":
            for name in ("start", "end"):
                if data.get(name) is not None:
                    raise serializers.ValidationError({name: "only with period=custom"})
            return data
        errors = {name: "required with period=custom" for name in ("start", "end") if data.get(name) is None}
        if errors:
            raise serializers.ValidationError(errors)
        if data["end"] < data["start"]:
            raise serializers.ValidationError({"end": "must be on or after start"})
        if (data["end"] - data["start"]).days + 1 > max_days():
            raise serializers.ValidationError({"end": f"the period may span at most {max_days()} days"})
        return data


def period_from(data: dict, *, now: datetime | None = None) -> Period:
    """The Period of ReportQuery's validated data."""
    session = data.get("session")
    if data["period"] == "custom":
        start, end = _midnight(data["start"]), _midnight(data["end"] + timedelta(days=1))
        return Period(start=start, end=end, key="custom", session=session)
    now = now or timezone.now()
    return Period(start=now - timedelta(days=PRESETS[data["period"]]), end=now, key=data["period"], session=session)


def parse_period(params) -> Period:
    """The Period a query asks for, or serializers.ValidationError naming each bad field."""
    query = ReportQuery(data={key: params.get(key) for key in ("period", "start", "end", "session") if params.get(key)})
    query.is_valid(raise_exception=True)
    return period_from(query.validated_data)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())
