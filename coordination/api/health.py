"""Liveness, readiness and the Prometheus scrape endpoint.

/healthz answers without touching the database (is the process serving?).
/readyz checks the database, a channel-layer round trip and a live daemon; it
needs no credentials and says only which checks pass, never any data.
/metrics needs a signed-in user or an API token (Prometheus: `authorization:
{type: Token, credentials_file: ...}`), like every other read of the API.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from coordination.selectors import live_daemon_exists
from metrics import prometheus

logger = logging.getLogger(__name__)
CHANNEL_TIMEOUT_S = 2.0


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _channel_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel("readyz.")
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "readyz.ping", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), timeout=CHANNEL_TIMEOUT_S)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned another message")


def check_channel_layer() -> None:
    async_to_sync(_channel_round_trip)()


def check_daemon() -> None:
    if not live_daemon_exists():
        raise RuntimeError("no coordinator daemon with a fresh heartbeat")


CHECKS = {"database": check_database, "channel_layer": check_channel_layer, "coordinator": check_daemon}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503; the body names each check as "ok" or "failing"."""
    checks: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception:  # any failure means not ready; details go to the log, not the response
            logger.warning("Readiness check %s failed", name, exc_info=True)
            checks[name] = "failing"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "failing", "checks": checks}, status=200 if ready else 503)


class PrometheusRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "prometheus"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        # Errors (401/403) arrive as dicts; keep them readable as plain text.
        return str(data.get("detail", data) if isinstance(data, dict) else data).encode()


class PrometheusMetricsView(APIView):
    """Prometheus exposition text of the key figures; any signed-in user or token."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [PrometheusRenderer]
    # A scrape comes on a fixed schedule; like the probes, it is never rate limited.
    throttle_classes = []

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(prometheus.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
