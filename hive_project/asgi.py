"""ASGI entry point: Django for HTTP, Channels for WebSockets.

A socket with an `Origin` header must come from an allowed host; one without it (a
non-browser client) may authenticate only with an API token. Then the session cookie or
the token authenticates it (coordination.ws_auth); the consumer refuses anonymous ones (4401).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
# Set Django up first so models are ready before consumers import them.
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

from hive_project.http_bridge import SyncHTTPBridge, cap_daphne_request_bodies  # noqa: E402

# Daphne keeps no more of a request body than the API accepts (see http_bridge).
cap_daphne_request_bodies(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)

# One thread hop per HTTP request instead of one per middleware hook (see http_bridge).
django_http_app = SyncHTTPBridge(threads=int(os.environ.get("HIVE_HTTP_THREADS", "8")))

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from coordination.routing import websocket_urlpatterns  # noqa: E402
from coordination.ws_auth import HiveAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_http_app,
        "websocket": HiveAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
