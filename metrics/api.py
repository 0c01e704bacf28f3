"""Metric and business-value endpoints of the JSON API (reads for any signed-in user)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordination.api import serializers as s
from coordination.api.views import WINDOW_PARAMETER, errors, window_param

from . import selectors


class CoordinationMetricsView(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER], responses={200: s.MetricsSerializer, **errors(400, 401, 403)}, tags=["metrics"]
    )
    def get(self, request: Request) -> Response:
        """Throughput, success rate, cycle times, handoff latency, rework, utilisation, cost, simulated share."""
        data = selectors.coordination_metrics(window=window_param(request))
        return Response(s.MetricsSerializer(data).data)


class BusinessValueView(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER],
        responses={200: s.BusinessValueSerializer, **errors(400, 401, 403)},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        """Hours saved, productivity gain, cost and value of the recorded work, with formulas and assumptions."""
        data = selectors.business_value(window=window_param(request))
        return Response(s.BusinessValueSerializer(data).data)
