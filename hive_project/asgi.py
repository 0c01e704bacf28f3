"""ASGI entry point: Django for HTTP, Channels for WebSockets.

Sockets must come from an allowed origin, then authenticate with the session cookie
or a DRF token (coordination.ws_auth); the consumer refuses anonymous ones (4401).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hive_project.settings")
# Build the Django app first so models are ready before consumers import them.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from coordination.routing import websocket_urlpatterns  # noqa: E402
from coordination.ws_auth import HiveAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(HiveAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
