"""POST /api/intake/<slug>: the one endpoint of every intake source.

A source authenticates its requests itself — a GitHub source by the body's HMAC
signature, a JSON source by its own bearer token — so the API's session and user-token
authentication, its permissions and its throttles do not apply here (set explicitly,
whatever the project defaults become).
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..actors import acting
from ..exceptions import DomainError
from ..inputs import WorkInputSerializer
from ..jsonlimits import json_loads
from ..services import WorkSpec
from . import services
from .models import IntakeSource


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class IntakeWorkInputSerializer(WorkInputSerializer):
    """A JSON source's body: the fields of submitted work, plus the link back to where it came from."""

    url = serializers.URLField(
        max_length=500, required=False, allow_blank=True, default="", help_text="The ticket or page the work is about."
    )


class IntakeResultSerializer(serializers.Serializer):
    delivery = serializers.IntegerField()
    source = serializers.CharField()
    outcome = serializers.ChoiceField(choices=services.IntakeDelivery.Outcome.choices)
    detail = serializers.CharField()
    workflow = serializers.DictField(allow_null=True)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _raw_body(request: Request) -> bytes:
    try:
        return request.body  # the exact bytes GitHub signed, before any parsing
    except RequestDataTooBig as exc:
        raise PayloadTooLarge("the request body is larger than this server accepts", field="body") from exc


def _flat(errors, prefix: str = "") -> dict[str, str]:
    """Serializer errors as {field: reason}, nested fields as `files[0]`, the API's error shape."""
    if isinstance(errors, dict):
        out: dict[str, str] = {}
        for key, value in errors.items():
            name = f"{prefix}[{key}]" if prefix and str(key).isdigit() else f"{prefix}.{key}" if prefix else str(key)
            out.update(_flat(value, name))
        return out
    if isinstance(errors, list) and errors and all(not isinstance(e, dict | list) for e in errors):
        return {prefix or "body": " ".join(str(e) for e in errors)}
    out = {}
    for index, value in enumerate(errors or []):
        out.update(_flat(value, f"{prefix}[{index}]"))
    return out


def _json_work(source: IntakeSource, body: bytes) -> WorkSpec:
    """Validate a JSON source's body with the API's rules for submitted work; the source gives the defaults."""
    try:
        data = json_loads(body.decode("utf-8"))  # deep nesting is a ValueError here, not a RecursionError
    except (UnicodeDecodeError, ValueError) as exc:
        raise DomainError(f"not a JSON document: {exc}", field="body") from exc
    if not isinstance(data, dict):
        raise DomainError("must be a JSON object", field="body")
    defaults = {"pattern": source.pattern, "priority": source.priority}
    if source.estimate_hours is not None:
        defaults["estimate_hours"] = source.estimate_hours
    serializer = IntakeWorkInputSerializer(data={**defaults, **data})
    if not serializer.is_valid():
        raise DomainError("the work item is not valid", errors=_flat(serializer.errors))
    fields = dict(serializer.validated_data)
    return WorkSpec(source_url=fields.pop("url"), **fields)


class IntakeView(APIView):
    authentication_classes: list = []  # each source authenticates its own requests (see the module)
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="intake_receive",
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("X-GitHub-Event", str, OpenApiParameter.HEADER, description="GitHub sources."),
            OpenApiParameter("X-GitHub-Delivery", str, OpenApiParameter.HEADER, description="GitHub sources."),
            OpenApiParameter("X-Hub-Signature-256", str, OpenApiParameter.HEADER, description="GitHub sources."),
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, description="JSON sources."),
        ],
        responses={
            200: IntakeResultSerializer,
            201: IntakeResultSerializer,
            **{code: OpenApiTypes.OBJECT for code in (400, 401, 403, 404, 409, 413, 422, 503)},
        },
        auth=[],
        tags=["intake"],
    )
    def post(self, request: Request, slug: str) -> Response:
        """Work from outside, for the source `slug` (configured in the admin).

        GitHub sources take `issues`, `issue_comment` and `ping` webhooks signed with
        `X-Hub-Signature-256`; a delivery id is processed once (a repeat is 409). JSON sources
        take `Authorization: Bearer <source token>` and `Idempotency-Key`; a repeated key returns
        the first answer again (header `Idempotent-Replayed: true`). Refused requests write nothing.
        """
        source = IntakeSource.objects.filter(slug=slug, active=True).select_related("session").first()
        if source is None:
            raise services.SourceNotFound(f"no active intake source {slug!r}", field="slug")
        # What an intake changes is recorded as done by that intake, not by a person.
        with acting(f"intake:{source.slug}"):
            if source.kind == IntakeSource.Kind.GITHUB:
                result = services.github_delivery_receive(
                    source=source,
                    event=request.headers.get("X-GitHub-Event", ""),
                    delivery_id=request.headers.get("X-GitHub-Delivery", ""),
                    signature=request.headers.get("X-Hub-Signature-256", ""),
                    body=_raw_body(request),
                    content_type=request.content_type or "",
                )
            else:
                services.json_authenticate(source=source, token=_bearer(request))
                body = _raw_body(request)
                work = _json_work(source, body)
                result = services.json_delivery_receive(
                    source=source, idempotency_key=request.headers.get("Idempotency-Key", ""), body=body, work=work
                )
        response = Response(result.body, status=result.status)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(exc, services.TokenRefused):
            response["WWW-Authenticate"] = 'Bearer realm="intake"'
        return response
