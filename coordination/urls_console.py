"""The server-rendered console (namespace "console"), its PWA files at the site root."""

from django.urls import path

from . import validation_views, views, workflow_views
from .access import views as access_views

app_name = "console"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("flow/", views.flow, name="flow"),
    path("sessions/", views.sessions, name="sessions"),
    path("sessions/<int:pk>/", views.session_detail, name="session"),
    path("sessions/<int:pk>/replay/", views.session_replay, name="session_replay"),
    path("workflows/<int:pk>/", workflow_views.workflow_detail, name="workflow"),
    path("agents/<int:pk>/", views.agent_detail, name="agent"),
    path("agents/<int:pk>/<str:action>/", views.agent_action, name="agent_action"),
    path("decisions/", views.decisions, name="decisions"),
    path("decisions/<int:pk>/answer/", views.decision_answer, name="decision_answer"),
    path("teams/new/", views.spawn_team, name="spawn"),
    path("work/new/", views.submit_work, name="submit"),
    path("validation/", validation_views.validation, name="validation"),
    path("validation/start/", validation_views.validation_start, name="validation_start"),
    path("tokens/", access_views.tokens, name="tokens"),
    path("tokens/revoke/", access_views.token_revoke_view, name="token_revoke"),
    path("offline/", views.offline, name="offline"),
    path("sw.js", views.service_worker, name="service_worker"),
    path("manifest.webmanifest", views.manifest, name="manifest"),
]
