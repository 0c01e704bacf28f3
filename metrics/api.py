"""Metric, business-value and validation-run endpoints of the JSON API (reads for any signed-in user)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Agent
from coordination.api.common import errors, validated
from coordination.api.pagination import HivePagination

from . import figures, selectors
from . import serializers as s
from .validation import records
from .validation import selectors as validation_selectors

WINDOW_PARAMETER = OpenApiParameter(
    "window",
    str,
    enum=list(selectors.WINDOWS),
    default=s.DEFAULT_WINDOW,
    description="Time window of the figures.",
)


def window_param(request: Request) -> str:
    """The `window` query parameter; a bad or empty one is a 400 naming `window`."""
    # A plain dict, so an empty `window=` is refused instead of standing for the default.
    return validated(s.WindowQuerySerializer, request.query_params.dict())["window"]


class CoordinationMetricsView(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER], responses={200: s.MetricsSerializer, **errors(400, 401, 403)}, tags=["metrics"]
    )
    def get(self, request: Request) -> Response:
        """Throughput, success rate, cycle times, handoff latency, rework, utilisation, cost, simulated share."""
        return Response(figures.coordination_metrics(window_param(request)))


class BusinessValueView(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER],
        responses={200: s.BusinessValueSerializer, **errors(400, 401, 403)},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        """Hours saved, productivity gain, cost and value of the recorded work, with formulas and assumptions."""
        return Response(figures.business_value(window_param(request)))


class AgentPerformanceView(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER],
        responses={200: s.AgentPerformanceSerializer, **errors(400, 401, 403, 404)},
        tags=["agents"],
        operation_id="agents_performance_retrieve",
    )
    def get(self, request: Request, pk: str) -> Response:
        """The agent's record in a window: completions, failures, utilisation, tokens, cost."""
        window = window_param(request)
        if not (pk.isascii() and pk.isdigit()):
            raise Http404  # a malformed id is a JSON 404 like a missing one
        agent = get_object_or_404(Agent, pk=int(pk))
        data = selectors.agent_performance(agent=agent, window=window)
        return Response(s.AgentPerformanceSerializer(data).data)


@extend_schema_view(
    list=extend_schema(responses={200: s.ValidationRunSerializer(many=True), **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: s.ValidationRunSerializer, **errors(401, 403, 404)}),
)
@extend_schema(tags=["validation"])
class ValidationRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Validation runs (`manage.py validate_hive`), latest first; operators start a sandbox run with POST."""

    queryset = validation_selectors.validation_runs()
    serializer_class = s.ValidationRunSerializer
    pagination_class = HivePagination
    # Any path segment reaches the view, so a malformed id is a JSON 404 like a missing one.
    lookup_value_regex = "[^/]+"
    filter_backends = []

    @extend_schema(
        request=s.ValidationStartSerializer, responses={202: s.ValidationRunSerializer, **errors(400, 401, 403, 409)}
    )
    def create(self, request: Request) -> Response:
        """Start a sandbox validation run (throwaway SQLite database) in the background; 409 while one runs."""
        data = validated(s.ValidationStartSerializer, request.data)
        run = records.validation_sandbox_launch(
            user=request.user, minutes=data["minutes"], faults=data["faults"], workflows=data["workflows"]
        )
        return Response(s.ValidationRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
