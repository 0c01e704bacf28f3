"""Liveness, readiness and the Prometheus scrape endpoint.

/healthz answers without touching the database (is the process serving?).
/readyz checks the database, the channel layer's Redis (a PING with a short timeout) and
a live daemon; it needs no credentials and says only which checks pass, never any data.
Probes come concurrently from several request threads, so the check never touches the
process's shared channel layer (whose receive() belongs to one event loop): each probe
pings Redis itself and gives up after REDIS_TIMEOUT_S, so a frozen Redis cannot hold a
request thread for longer than that.
/metrics needs a signed-in user or an API token (Prometheus: `authorization:
{type: Token, credentials_file: ...}`), like every other read of the API.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from coordination.selectors import live_daemon_exists
from metrics import prometheus

logger = logging.getLogger(__name__)
# Seconds a readiness probe waits for Redis to connect and to answer PING, each.
REDIS_TIMEOUT_S = 0.4


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def channel_layer_redis_url() -> str | None:
    """The Redis URL of the default channel layer, or None when the layer is in-process."""
    config = settings.CHANNEL_LAYERS.get("default", {})
    if "redis" not in config.get("BACKEND", "").lower():
        return None
    host = (config.get("CONFIG", {}).get("hosts") or ["redis://127.0.0.1:6379/0"])[0]
    if isinstance(host, dict):
        host = host.get("address", "redis://127.0.0.1:6379/0")
    if isinstance(host, list | tuple):
        host = f"redis://{host[0]}:{host[1]}/0"
    return str(host)


def check_channel_layer() -> None:
    """The channel layer's Redis answers PING in time (an in-process layer is always there).

    A fresh client and connection per probe: nothing is shared between request threads, and
    a connection left half-read by a timeout is never reused.
    """
    url = channel_layer_redis_url()
    if url is None:
        return
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),  # one try: the probe's answer must come within the timeout
    )
    try:
        client.ping()
    finally:
        client.close()


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
        except Exception as exc:  # any failure means not ready; the reason goes to the log, not the response
            logger.warning("Readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
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
