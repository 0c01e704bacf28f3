"""Metric and business-value endpoints of the JSON API (reads for any signed-in user)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordination.api import serializers as s
from coordination.api.cache import WINDOW_SCALE, cached_read
from coordination.api.views import WINDOW_PARAMETER, errors, window_param

from . import selectors
from .models import ValueAssumptions


class CoordinationMetricsView(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER], responses={200: s.MetricsSerializer, **errors(400, 401, 403)}, tags=["metrics"]
    )
    def get(self, request: Request) -> Response:
        """Throughput, success rate, cycle times, handoff latency, rework, utilisation, cost, simulated share."""
        window = window_param(request)
        data = cached_read(
            f"metrics:{window}", lambda: selectors.coordination_metrics(window=window), scale=WINDOW_SCALE[window]
        )
        return Response(data)


class BusinessValueView(APIView):
    @extend_schema(
        parameters=[WINDOW_PARAMETER],
        responses={200: s.BusinessValueSerializer, **errors(400, 401, 403)},
        tags=["metrics"],
    )
    def get(self, request: Request) -> Response:
        """Hours saved, productivity gain, cost and value of the recorded work, with formulas and assumptions."""
        window = window_param(request)
        # Keyed by the assumptions' last edit so a change shows at once.
        edited = ValueAssumptions.objects.values_list("updated_at", flat=True).first()
        key = f"value:{window}:{edited.timestamp() if edited else 0}"
        return Response(cached_read(key, lambda: selectors.business_value(window=window), scale=WINDOW_SCALE[window]))
