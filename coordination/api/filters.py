"""django-filter sets for the list endpoints: exact filters on the indexed columns.

Related objects are filtered by id number (an unknown id gives an empty page,
not an error), choices by their documented values.
"""

from __future__ import annotations

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions

from agents.models import Agent
from coordination.models import Decision, Session, Task, Workflow


class StrictFilterBackend(DjangoFilterBackend):
    """An empty choice or id filter (`?status=`) is refused as the schema says, rather than read as no filter."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            typed = {
                name
                for name, filter_ in filterset_class.base_filters.items()
                if isinstance(filter_, django_filters.ChoiceFilter | django_filters.NumberFilter)
            }
            empty = sorted(name for name in typed if request.query_params.get(name) == "")
            if empty:
                raise exceptions.ValidationError(
                    {name: ["may not be empty; leave the parameter out"] for name in empty}
                )
        return super().filter_queryset(request, queryset, view)


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """A whole-number id; any integer is valid and an unknown one (negative, huge) matches nothing."""

    field_class = forms.IntegerField

    def filter(self, qs, value):
        if value is not None and not -(2**63) <= value < 2**63:  # no row has such an id (and SQLite cannot bind it)
            return qs.none()
        return super().filter(qs, value)


def by_id(field: str) -> IdFilter:
    return IdFilter(field_name=f"{field}_id", help_text=f"{field} id")


class AgentFilter(django_filters.FilterSet):
    session = by_id("session")

    class Meta:
        model = Agent
        fields = ["session", "role", "status", "runtime"]


class SessionFilter(django_filters.FilterSet):
    class Meta:
        model = Session
        fields = ["status"]


class WorkflowFilter(django_filters.FilterSet):
    session = by_id("session")

    class Meta:
        model = Workflow
        fields = ["session", "status", "pattern"]


class TaskFilter(django_filters.FilterSet):
    session = by_id("session")
    workflow = by_id("workflow")
    agent = by_id("agent")

    class Meta:
        model = Task
        fields = ["status", "role", "agent", "session", "workflow", "step"]


class DecisionFilter(django_filters.FilterSet):
    session = by_id("session")
    workflow = by_id("workflow")
    task = by_id("task")
    status = django_filters.ChoiceFilter(
        choices=[("all", "all"), *Decision.Status.choices],
        method="filter_status",
        empty_label=None,
        help_text="open (default), answered, expired, cancelled, or all",
    )

    class Meta:
        model = Decision
        fields = ["session", "workflow", "task", "kind", "status"]

    def filter_status(self, queryset, name, value):
        return queryset if value == "all" else queryset.filter(status=value)

    @property
    def qs(self):
        queryset = super().qs
        if not self.data.get("status"):
            queryset = queryset.filter(status=Decision.Status.OPEN)
        return queryset
