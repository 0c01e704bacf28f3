"""GET /api/reports/delivery (JSON) and /api/reports/delivery.csv: the report page's data for scripts and schedulers."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordination.api.common import errors, validated
from coordination.models import Session

from .exports import TABLES, report_csv
from .figures import headline_figures
from .inputs import PERIOD_CHOICES, ReportQuery, period_from
from .selectors import delivery_report

PARAMETERS = [
    OpenApiParameter(
        "period",
        str,
        enum=[key for key, _ in PERIOD_CHOICES],
        default="7d",
        description="7d, 30d, or custom with start and end.",
    ),
    OpenApiParameter("start", OpenApiTypes.DATE, description="First day (YYYY-MM-DD), with period=custom."),
    OpenApiParameter(
        "end",
        OpenApiTypes.DATE,
        description="Last day, included, with period=custom; on or after "
        "start, and the span at most HIVE_REPORT_MAX_DAYS days.",
    ),
    OpenApiParameter(
        "session", {"type": "integer", "minimum": 1}, description="One session's report; all sessions when absent."
    ),
]
REPORT = inline_serializer(
    "DeliveryReport",
    {
        "period": serializers.DictField(),
        "generated_at": serializers.DateTimeField(),
        "simulated": serializers.BooleanField(help_text="Some of the work in it was scripted (simulated)."),
        "deliveries": serializers.ListField(child=serializers.DictField()),
        "totals": serializers.DictField(),
        "abandoned": serializers.ListField(child=serializers.DictField()),
        "blocked": serializers.ListField(child=serializers.DictField()),
        "decisions": serializers.DictField(),
        "value": serializers.DictField(),
        "quality": serializers.DictField(),
        "cost_by_agent": serializers.ListField(child=serializers.DictField()),
        "series": serializers.ListField(child=serializers.DictField()),
        "formulas": serializers.DictField(child=serializers.CharField()),
        "figures": serializers.ListField(child=serializers.DictField(), help_text="Headline figures with sources."),
    },
)


def _period(request: Request):
    """The Period asked for; a bad field is a 400 naming it, an unknown session a 404."""
    data = {key: value for key, value in request.query_params.dict().items() if key in ("period", "start", "end")}
    raw = request.query_params.get("session")
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()):
            raise serializers.ValidationError({"session": ["must be a session id"]})
        if len(raw) > 18 or not Session.objects.filter(pk=int(raw)).exists():
            raise Http404("No such session.")
        data["session"] = raw
    return period_from(validated(ReportQuery, data))


class DeliveryReportView(APIView):
    @extend_schema(parameters=PARAMETERS, responses={200: REPORT, **errors(400, 401, 403, 404)}, tags=["reports"])
    def get(self, request: Request) -> Response:
        """The delivery report for a period: deliveries, abandoned and blocked work, decisions, value, quality, cost."""
        report = delivery_report(_period(request))
        return Response({**report, "figures": headline_figures(report)})


class DeliveryReportCsvView(APIView):
    @extend_schema(
        parameters=[*PARAMETERS, OpenApiParameter("table", str, enum=list(TABLES), default="deliveries")],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One table of the report as CSV."),
            **errors(400, 401, 403, 404),
        },
        tags=["reports"],
    )
    def get(self, request: Request) -> HttpResponse:
        """One table of the delivery report as CSV: deliveries, figures (with formulas and sources), cost_by_agent or
        decisions."""
        table = request.query_params.get("table", "deliveries")
        if table not in TABLES:
            raise serializers.ValidationError({"table": [f"must be one of {', '.join(TABLES)}"]})
        period = _period(request)
        response = HttpResponse(
            report_csv(delivery_report(period), table=table), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="report-{table}.csv"'
        return response
