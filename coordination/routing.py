"""WebSocket routes (wrapped by hive_project.asgi in the origin check and authentication)."""

from django.urls import path, re_path

from .consumers import EventStreamConsumer

websocket_urlpatterns = [
    # Everything the user may see.
    path("ws/coordination/", EventStreamConsumer.as_asgi()),
    # One session; any id is routed so that an unknown one gets close code 4404, not a dropped socket.
    re_path(r"^ws/coordination/sessions/(?P<session_id>[^/]+)/$", EventStreamConsumer.as_asgi()),
]
